"""``python -m benchmarks.compare BASE.json NEW.json``: what changed between two result files.

For every target both files measured (scenario 1's rows, admission, cold evidence, each log
configuration, each stage), the median of its repeated runs on each side, their range, and
the change of the median, in the manner of ``benchstat`` and ``pyperf compare_to``. This
machine's speed moves every figure by tens of percent within minutes (docs/benchmarks.md,
"Machine and noise"), so a change is only called when the two sides' ranges do not overlap:

* ``better`` / ``worse``: the ranges are apart;
* ``~``: they overlap, the difference is within what the runs themselves vary;
* ``?``: a side has one run, there is no range to judge by.

Scenario 1 also compares each target's throughput divided by bare OPA's **in the same
round** (``÷ bare OPA``): both sides of that ratio ran minutes apart on the same host, which
makes it the figure to read when the host's speed differs between the two files.

``--fail-worse PCT`` exits 1 when a figure is ``worse`` by at least PCT percent (a gate for
a CI job that runs the benchmark); a file that is not a benchmark result exits 2.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCENARIO_TITLES = {
    "core": "Scenario 1: core decision",
    "admission": "Scenario 2: admission fast path",
    "cold": "Scenario 3: cold evidence",
    "log": "Scenario 4: decision log appends",
    "stages": "Stages (ms per call, in process)",
}
BARE_OPA = "bare OPA"

# (row key, label, higher is better) for the rows a load generator measured.
ROW_METRICS = (
    ("per_s", "per s", True),
    ("p50_ms", "p50 ms", False),
    ("p99_ms", "p99 ms", False),
    ("cpu_ms_per_req", "cpu ms/req", False),
)
LOG_METRICS = (("appends_per_s", "appends/s", True), ("p99_ms", "p99 ms", False))


class ResultsError(Exception):
    """A file that is not a ``python -m benchmarks`` result."""


@dataclass(frozen=True)
class Sample:
    """One figure of one target over its repeated runs."""

    values: tuple[float, ...]

    @property
    def median(self) -> float:
        return float(statistics.median(self.values))

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)


@dataclass(frozen=True)
class Line:
    """One figure of one target, on both sides."""

    scenario: str
    target: str
    metric: str
    higher_is_better: bool
    base: Sample | None
    new: Sample | None

    @property
    def change_pct(self) -> float | None:
        if self.base is None or self.new is None or self.base.median == 0:
            return None
        return (self.new.median - self.base.median) / self.base.median * 100.0

    @property
    def verdict(self) -> str:
        if self.base is None:
            return "only in new"
        if self.new is None:
            return "only in base"
        if len(self.base.values) < 2 or len(self.new.values) < 2:
            return "?"
        if self.new.low <= self.base.high and self.base.low <= self.new.high:
            return "~"
        up = self.new.median > self.base.median
        return "better" if up == self.higher_is_better else "worse"

    def to_json(self) -> dict[str, Any]:
        def side(s: Sample | None) -> dict[str, Any] | None:
            return None if s is None else {"median": s.median, "runs": list(s.values)}

        change = self.change_pct
        return {
            "scenario": self.scenario,
            "target": self.target,
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "base": side(self.base),
            "new": side(self.new),
            "change_pct": None if change is None else round(change, 2),
            "verdict": self.verdict,
        }


Figures = dict[tuple[str, str, str], tuple[Sample, bool]]
"""(scenario, target, metric) -> (the runs' values, higher is better)."""


def load_results(path: Path) -> dict[str, Any]:
    """A results file written by ``python -m benchmarks --json``; :class:`ResultsError` if not."""
    try:
        doc = json.loads(path.read_text())
    except OSError as exc:
        raise ResultsError(f"{path}: cannot be read ({exc.strerror})") from exc
    except ValueError as exc:
        raise ResultsError(f"{path}: not JSON ({exc})") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("scenarios"), dict):
        raise ResultsError(f"{path}: not a benchmark result (no 'scenarios' object)")
    return doc


def _add(figures: Figures, key: tuple[str, str, str], value: Any, higher: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return
    sample, _ = figures.get(key, (Sample(()), higher))
    figures[key] = (Sample((*sample.values, float(value))), higher)


def figures_of(doc: dict[str, Any]) -> Figures:
    """Every comparable figure of a results document, grouped by target over its runs."""
    figures: Figures = {}
    for scenario, result in doc["scenarios"].items():
        if not isinstance(result, dict):
            continue
        runs = [r for r in result.get("runs", []) if isinstance(r, dict)]
        if scenario == "stages":
            for run in runs:
                stage_ms = run.get("ms")
                for stage, ms in stage_ms.items() if isinstance(stage_ms, dict) else ():
                    _add(figures, (scenario, stage, "ms"), ms, False)
            continue
        if scenario == "log":
            from engine.log.bench import writers_label  # the table's own labels

            for run in runs:
                target = f"{run.get('backend')}, {writers_label(run)}"
                for key, label, higher in LOG_METRICS:
                    _add(figures, (scenario, target, label), run.get(key), higher)
            continue
        for run in runs:
            paced = run.get("rate") is not None  # its rate is the generator's pace
            for key, label, higher in ROW_METRICS:
                if not (paced and key == "per_s"):
                    _add(figures, (scenario, str(run.get("name")), label), run.get(key), higher)
        _add_ratios(figures, scenario, runs)
        for row in (r for r in result.get("commit_floor", []) if isinstance(r, dict)):
            for key, label, higher in ROW_METRICS:  # scenario 2's disk floor, paced too
                if key != "per_s":
                    _add(figures, (scenario, str(row.get("name")), label), row.get(key), higher)
    return figures


def _add_ratios(figures: Figures, scenario: str, runs: list[dict[str, Any]]) -> None:
    """Each target's throughput over bare OPA's in the same round (scenario 1)."""
    bare = {r.get("run"): r.get("per_s") for r in runs if r.get("name") == BARE_OPA}
    for run in runs:
        opa = bare.get(run.get("run"))
        per_s = run.get("per_s")
        if run.get("name") == BARE_OPA or not opa or not isinstance(per_s, int | float):
            continue
        if run.get("rate") is not None:  # a paced row's rate is its schedule, not a figure
            continue
        _add(figures, (scenario, f"{run.get('name')} ÷ bare OPA", "ratio"), per_s / opa, True)


def compare(base: dict[str, Any], new: dict[str, Any]) -> list[Line]:
    """One line per figure either side has, in the scenarios' and the files' order."""
    old_figs, new_figs = figures_of(base), figures_of(new)
    keys = list(old_figs) + [k for k in new_figs if k not in old_figs]
    order = {name: i for i, name in enumerate(SCENARIO_TITLES)}
    keys.sort(key=lambda k: order.get(k[0], len(order)))  # stable: file order within one
    lines = []
    for key in keys:
        old, fresh = old_figs.get(key), new_figs.get(key)
        higher = (old or fresh or (Sample(()), True))[1]
        lines.append(Line(*key, higher, old[0] if old else None, fresh[0] if fresh else None))
    return lines


def _num(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}"


def _side(sample: Sample | None) -> str:
    if sample is None:
        return "-"
    if len(sample.values) == 1:
        return _num(sample.median)
    return f"{_num(sample.median)} ({_num(sample.low)}-{_num(sample.high)})"


def _header(label: str, path: Path, doc: dict[str, Any]) -> str:
    machine = doc.get("machine") or {}
    load = machine.get("loadavg_start") or ["?"]
    load0 = f"{load[0]:.2f}" if isinstance(load[0], int | float) else "?"
    return (
        f"{label}: {path}  started {doc.get('started', '?')}  load {load0}  "
        f"{machine.get('nproc', '?')} CPUs {machine.get('cpu_model', '?')}  "
        f"Python {machine.get('python', '?')}"
    )


def machine_differences(base: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs between the two machines (nproc, CPU model, Python and its build, kernel)."""
    old, fresh = base.get("machine") or {}, new.get("machine") or {}
    return [
        f"{key} {old.get(key)} -> {fresh.get(key)}"
        for key in ("nproc", "cpu_model", "python", "python_executable", "kernel")
        if old.get(key) != fresh.get(key)
    ]


def render(
    lines: Iterable[Line],
    base: tuple[Path, dict[str, Any]],
    new: tuple[Path, dict[str, Any]],
) -> str:
    """The comparison as tables, one per scenario."""
    out = [_header("base", *base), _header("new ", *new)]
    differences = machine_differences(base[1], new[1])
    if differences:
        out.append("note: the machines differ: " + "; ".join(differences))
    head = f"{'target':<38} {'metric':<10} {'base':>26} {'new':>26} {'change':>9}  verdict"
    scenario = None
    for line in lines:
        if line.scenario != scenario:
            scenario = line.scenario
            out += ["", f"== {SCENARIO_TITLES.get(scenario, scenario)}", head, "-" * len(head)]
        change = line.change_pct
        cell = "" if change is None else f"{change:+.1f} %"
        out.append(
            f"{line.target:<38} {line.metric:<10} {_side(line.base):>26} "
            f"{_side(line.new):>26} {cell:>9}  {line.verdict}"
        )
    out += [
        "",
        "median (lowest-highest) of each target's runs; better/worse: the ranges do not "
        "overlap; ~: they do; ?: a side has one run",
    ]
    return "\n".join(out)


def regressions(lines: Iterable[Line], threshold_pct: float) -> list[Line]:
    """Figures ``worse`` by at least ``threshold_pct`` percent."""
    return [
        line
        for line in lines
        if line.verdict == "worse"
        and line.change_pct is not None
        and abs(line.change_pct) >= threshold_pct
    ]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.compare",
        description="Compare two results files written by python -m benchmarks.",
    )
    p.add_argument("base", type=Path, help="the earlier results (e.g. before a change)")
    p.add_argument("new", type=Path, help="the later results")
    p.add_argument("--json", type=Path, default=None, help="also write the comparison here")
    p.add_argument(
        "--fail-worse",
        type=float,
        default=None,
        metavar="PCT",
        help="exit 1 when a figure is worse by PCT percent or more, outside the runs' ranges",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Print the comparison; 0, or 1 for a regression past --fail-worse, 2 for a bad file."""
    args = parse_args(argv)
    try:
        base, new = load_results(args.base), load_results(args.new)
    except ResultsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    lines = compare(base, new)
    print(render(lines, (args.base, base), (args.new, new)))
    if args.json is not None:
        doc = {
            "base": str(args.base),
            "new": str(args.new),
            "machine_differences": machine_differences(base, new),
            "lines": [line.to_json() for line in lines],
        }
        args.json.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    if args.fail_worse is not None:
        worse = regressions(lines, args.fail_worse)
        for line in worse:
            print(
                f"worse by {abs(line.change_pct or 0):.1f} %: {line.target} {line.metric}",
                file=sys.stderr,
            )
        if worse:
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
