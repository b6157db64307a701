"""``python -m benchmarks.ab BASE [NEW]``: two builds of the service, interleaved.

On this VM the host's speed moves by a third from one minute to the next, more than most
changes do, so a change is judged by an A/B: ``releasegate serve`` from two revisions (or a
revision and the working tree) side by side, the same load sent to each in turn, the order
swapped every round, and the comparison made round by round. A revision other than ``.``
(the working tree) is checked out in a temporary git worktree, which runs with this
checkout's OPA (``RELEASEGATE_TOOLS_DIR``) and its own committed bundle.

Scenarios: ``core`` (scenario 1's request, closed loop) and ``admission`` (scenario 2's
review, paced). Printed per round: decisions/s, p50 and p99, the service's own CPU per
decision (without its OPA) and its OPA's; then per side the mean, and against the first
side the median of the per-round ratios and the rounds ahead. ``--env-b KEY=VALUE`` sets a
variable for the second side only (a setting under test, e.g.
``RELEASEGATE_CPU_AFFINITY=auto`` with ``NEW`` equal to ``BASE``); ``--python-b PATH``
runs the second side on another interpreter (a virtualenv's ``python`` with the project
installed: the same code on two Python versions).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.cli import format_cores
from benchmarks.measure import run_load
from benchmarks.procs import REPO, Service, start_service
from benchmarks.scenarios import (
    ADMITTED,
    ALLOW,
    ENVIRONMENT,
    _decide_once,
    _write,
    admission_review,
    request_body,
)

WORKING_TREE = "."


@dataclass
class Side:
    """One build under test: its label, revision, checkout and running service."""

    label: str
    rev: str
    commit: str
    checkout: Path
    env: dict[str, str] = field(default_factory=dict)
    python: str = sys.executable
    service: Service | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)


def _git(*args: str, cwd: Path = REPO) -> str:
    out = subprocess.run(  # noqa: S603 - fixed argv
        ["git", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,  # noqa: S607
    )
    return out.stdout.strip()


@contextmanager
def checkout(rev: str, workdir: Path) -> Iterator[tuple[Path, str]]:
    """``(directory, commit)`` of ``rev``: this checkout for ``.``, else a worktree."""
    if rev == WORKING_TREE:
        yield REPO, _git("rev-parse", "HEAD") + "+working-tree"
        return
    commit = _git("rev-parse", "--verify", f"{rev}^{{commit}}")
    path = workdir / f"rev-{commit[:12]}-{uuid.uuid4().hex[:6]}"
    _git("worktree", "add", "--detach", "--quiet", str(path), commit)
    try:
        yield path, commit
    finally:
        _git("worktree", "remove", "--force", str(path))


def _parse_env(pairs: list[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--env-b: expected KEY=VALUE, got {pair!r}")
        env[key] = value
    return env


def _load(side: Side, args: argparse.Namespace, files: dict[str, Path]) -> dict[str, Any]:
    svc = side.service
    assert svc is not None
    common: dict[str, Any] = {
        "target_pid": svc.process.pid,
        "port": svc.port,
        "concurrency": args.concurrency,
        "event_loop": True,
    }
    if args.scenario == "admission":
        return run_load(
            side.label, **common, path=f"/v1/admission/{ENVIRONMENT}",
            body_file=files["review"],
            headers={"Authorization": f"Bearer {svc.tokens['admission']}"},
            requests=args.requests or int(args.rate * args.duration), duration=None,
            rate=args.rate, expect_text=ADMITTED,
        )  # fmt: skip
    return run_load(
        side.label, **common, path="/v1/decisions", body_file=files["body"],
        headers={"Authorization": f"Bearer {svc.tokens['ci']}"},
        requests=args.requests, duration=None if args.requests else args.duration,
        expect_text=ALLOW,
    )  # fmt: skip


def _loop_cells(row: dict[str, Any]) -> str:
    loop = row.get("event_loop")
    if not loop:
        return ""
    return f"  loop busy {loop['busy']:.2f} preempted {loop['preempted_per_req']:.2f}/req"


def _service_ms(row: dict[str, Any]) -> float:
    return float(row["cpu_ms_per_req"]) - float(row["opa_cpu_ms_per_req"])


def summarize(sides: list[Side], scenario: str) -> list[dict[str, Any]]:
    """Per side: means, and against the first side the per-round ratios' medians."""
    base = sides[0]
    out = []
    for side in sides:
        rows = side.rows
        entry: dict[str, Any] = {
            "label": side.label,
            "rev": side.rev,
            "commit": side.commit,
            "env": side.env,
            "python": side.python,
            "rounds": len(rows),
            "mean_per_s": round(statistics.fmean(r["per_s"] for r in rows), 1),
            "mean_p50_ms": round(statistics.fmean(r["p50_ms"] for r in rows), 3),
            "mean_p99_ms": round(statistics.fmean(r["p99_ms"] for r in rows), 3),
            "mean_service_cpu_ms": round(statistics.fmean(_service_ms(r) for r in rows), 3),
        }
        if side is not base:
            pairs = list(zip(base.rows, rows, strict=True))
            if scenario == "core":
                entry["median_throughput_ratio"] = round(
                    statistics.median(b["per_s"] / a["per_s"] for a, b in pairs), 3
                )
                entry["rounds_ahead"] = sum(b["per_s"] > a["per_s"] for a, b in pairs)
            else:
                entry["median_p99_ratio"] = round(
                    statistics.median(b["p99_ms"] / a["p99_ms"] for a, b in pairs), 3
                )
                entry["rounds_ahead"] = sum(b["p99_ms"] < a["p99_ms"] for a, b in pairs)
            entry["median_service_cpu_ratio"] = round(
                statistics.median(_service_ms(b) / _service_ms(a) for a, b in pairs), 3
            )
        out.append(entry)
    return out


def _print_summary(summary: list[dict[str, Any]], scenario: str) -> None:
    print()
    for s in summary:
        line = (
            f"{s['label']:<4} {s['rev']:<12} mean {s['mean_per_s']:8.1f}/s  p50 "
            f"{s['mean_p50_ms']:7.2f}  p99 {s['mean_p99_ms']:7.2f} ms  service CPU "
            f"{s['mean_service_cpu_ms']:.3f} ms"
        )
        if "rounds_ahead" in s:
            key = "median_throughput_ratio" if scenario == "core" else "median_p99_ratio"
            what = "decisions/s" if scenario == "core" else "p99"
            line += (
                f"\n     vs A: median {what} ratio {s[key]}, service CPU ratio "
                f"{s['median_service_cpu_ratio']}, ahead in {s['rounds_ahead']} of "
                f"{s['rounds']} rounds"
            )
        print(line)


def main(argv: list[str] | None = None) -> int:
    """Start both services, run the rounds, print and write the comparison."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ab", description=__doc__)
    parser.add_argument("base", help="revision A (a git revision, or . for the working tree)")
    parser.add_argument("new", nargs="?", default=WORKING_TREE, help="revision B (default .)")
    parser.add_argument("--scenario", choices=("core", "admission"), default="core")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per run")
    parser.add_argument("--requests", type=int, default=None, help="requests per run instead")
    parser.add_argument("--concurrency", type=int, default=None)
    parser.add_argument("--rate", type=float, default=100.0, help="admission: requests/s")
    parser.add_argument("--env-b", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--python-b", default=sys.executable, metavar="PATH")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.concurrency is None:
        args.concurrency = 8 if args.scenario == "admission" else 16
    tools = {"RELEASEGATE_TOOLS_DIR": str(REPO / ".tools")}
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rg-ab-")))
        sides = []
        for label, rev, extra, python in (
            ("A", args.base, {}, sys.executable),
            ("B", args.new, _parse_env(args.env_b), args.python_b),
        ):
            path, commit = stack.enter_context(checkout(rev, workdir))
            sides.append(Side(label, rev, commit, path, env={**tools, **extra}, python=python))
        body = request_body()
        digest = json.loads(body)["artifact"]["digest"]
        review = json.dumps(admission_review(digest, str(uuid.uuid4())), separators=(",", ":"))
        files = {
            "body": _write(workdir, "request.json", body),
            "review": _write(workdir, "review.json", review.encode()),
        }
        for side in sides:
            svc = start_service(
                workdir / f"state-{side.label}", env=side.env, roles=("ci", "admission"),
                repo=side.checkout, python=side.python,
            )  # fmt: skip
            stack.callback(svc.stop)
            side.service = svc
            _decide_once(svc, body)  # warm, and the prior allow admission needs
        other_python = args.python_b != sys.executable
        print(f"A: {args.base} ({sides[0].commit[:12]})  B: {args.new} ({sides[1].commit[:12]})"
              f"{'  env B: ' + ' '.join(args.env_b) if args.env_b else ''}"
              f"{'  python B: ' + args.python_b if other_python else ''}")  # fmt: skip
        print(f"{args.scenario}: {args.rounds} rounds, order swapped every round")
        for i in range(args.rounds):
            for side in sides if i % 2 == 0 else sides[::-1]:
                row = _load(side, args, files)
                row["round"] = i + 1
                side.rows.append(row)
                print(
                    f"round {i + 1:>2} {side.label}  {row['per_s']:8.1f}/s  p50 "
                    f"{row['p50_ms']:7.2f}  p99 {row['p99_ms']:7.2f} ms  service CPU "
                    f"{_service_ms(row):.3f}  OPA {row['opa_cpu_ms_per_req']:.3f} ms  steal "
                    f"{format_cores(row.get('steal_cores'))}{_loop_cells(row)}",
                    flush=True,
                )
        summary = summarize(sides, args.scenario)
        _print_summary(summary, args.scenario)
        if args.json is not None:
            doc = {
                "scenario": args.scenario,
                "summary": summary,
                "rounds": {s.label: s.rows for s in sides},
            }
            args.json.write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
