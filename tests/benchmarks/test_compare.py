"""``python -m benchmarks.compare``: two results files, figure by figure.

The real files are two runs of the same code an hour apart (tests/benchmarks/data/README.md):
every absolute figure moved with the host, the ratios to bare OPA did not.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import pytest

from benchmarks.compare import compare, load_results, main

DATA = Path(__file__).parent / "data"
ROUND6, ROUND7 = DATA / "results-round6.json", DATA / "results-round7.json"


def _lines(base: dict[str, Any], new: dict[str, Any]) -> dict[tuple[str, str, str], Any]:
    return {(x.scenario, x.target, x.metric): x for x in compare(base, new)}


def _core(*rounds: tuple[float, float], machine: dict[str, Any] | None = None) -> dict[str, Any]:
    """A results document with scenario 1 rows: (releasegate per s, bare OPA per s) per round."""
    runs = []
    for i, (releasegate, opa) in enumerate(rounds, start=1):
        for name, per_s in (("releasegate (SQLite)", releasegate), ("bare OPA", opa)):
            runs.append(
                {
                    "name": name,
                    "run": i,
                    "per_s": per_s,
                    "p50_ms": 10.0,
                    "p99_ms": 20.0,
                    "cpu_ms_per_req": 2000.0 / per_s,
                    "rate": None,
                }  # fmt: skip
            )
    return {"machine": machine or {"nproc": 2}, "scenarios": {"core": {"runs": runs}}}


def test_the_same_code_on_a_slower_host_is_worse_in_figures_but_not_in_ratio() -> None:
    base, new = load_results(ROUND6), load_results(ROUND7)
    lines = _lines(base, new)
    throughput = lines[("core", "releasegate (SQLite)", "per s")]
    rows = [r["per_s"] for r in base["scenarios"]["core"]["runs"]
            if r["name"] == "releasegate (SQLite)"]  # fmt: skip
    assert throughput.base is not None and throughput.base.median == statistics.median(rows)
    assert throughput.verdict == "worse"  # 485-532/s, then 401-437/s
    assert throughput.change_pct is not None and throughput.change_pct < 0
    # Divided by bare OPA of the same round, the two sessions overlap.
    assert lines[("core", "releasegate (SQLite) ÷ bare OPA", "ratio")].verdict == "~"
    # Every scenario of both files is there; the paced admission rate is not a figure.
    assert {key[0] for key in lines} == {"core", "admission", "cold", "log", "stages"}
    assert ("admission", "releasegate admission", "p99 ms") in lines
    assert ("admission", "releasegate admission", "per s") not in lines
    assert lines[("log", "sqlite, 16 threads", "appends/s")].higher_is_better
    assert not lines[("stages", "pipeline", "ms")].higher_is_better


def test_a_file_against_itself_changes_nothing() -> None:
    doc = load_results(ROUND7)
    for line in compare(doc, doc):
        assert line.change_pct in (0.0, None)
        assert line.verdict == "~", line


def test_verdicts_follow_the_ranges_and_the_direction() -> None:
    base = _core((400, 2000), (420, 2100))
    lines = _lines(base, _core((500, 2000), (520, 2100)))
    assert lines[("core", "releasegate (SQLite)", "per s")].verdict == "better"
    assert lines[("core", "releasegate (SQLite)", "cpu ms/req")].verdict == "better"  # fell
    assert lines[("core", "releasegate (SQLite)", "p99 ms")].verdict == "~"  # equal
    assert lines[("core", "releasegate (SQLite) ÷ bare OPA", "ratio")].verdict == "better"
    slower = _lines(base, _core((300, 2000), (320, 2100)))
    assert slower[("core", "releasegate (SQLite)", "per s")].verdict == "worse"
    assert slower[("core", "releasegate (SQLite)", "cpu ms/req")].verdict == "worse"
    overlapping = _lines(base, _core((410, 2000), (430, 2100)))
    assert overlapping[("core", "releasegate (SQLite)", "per s")].verdict == "~"


def test_one_run_cannot_be_judged_and_missing_targets_are_named() -> None:
    lines = _lines(_core((400, 2000), (420, 2100)), _core((500, 2000)))
    assert lines[("core", "releasegate (SQLite)", "per s")].verdict == "?"
    base = _core((400, 2000), (420, 2100))
    new = json.loads(json.dumps(base))
    new["scenarios"]["core"]["runs"][0]["name"] = "releasegate (PostgreSQL)"
    lines = _lines(base, new)
    assert lines[("core", "releasegate (PostgreSQL)", "per s")].verdict == "only in new"
    only_base = lines[("core", "releasegate (SQLite)", "per s")]
    assert only_base.verdict == "?"  # one run left on the new side
    gone = _lines(base, {"scenarios": {}})
    assert {line.verdict for line in gone.values()} == {"only in base"}


def _write(tmp_path: Path, name: str, doc: dict[str, Any]) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def test_fail_worse_gates_on_regressions_past_the_threshold(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = _write(tmp_path, "base.json", _core((400, 2000), (420, 2100)))
    new = _write(tmp_path, "new.json", _core((300, 2000), (320, 2100)))  # -24 %
    assert main([str(base), str(new)]) == 0
    assert main([str(base), str(new), "--fail-worse", "40"]) == 0  # at most -32 % (CPU)
    capsys.readouterr()
    assert main([str(base), str(new), "--fail-worse", "10"]) == 1
    err = capsys.readouterr().err
    assert "releasegate (SQLite) per s" in err and "24.4 %" in err
    # An improvement never fails the gate.
    assert main([str(new), str(base), "--fail-worse", "0"]) == 0


def test_the_json_report_and_the_machine_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = _write(tmp_path, "b.json", _core((400, 2000), (420, 2100), machine={"nproc": 2}))
    new = _write(tmp_path, "n.json", _core((500, 2000), (520, 2100), machine={"nproc": 4}))
    out = tmp_path / "cmp.json"
    assert main([str(base), str(new), "--json", str(out)]) == 0
    assert "note: the machines differ: nproc 2 -> 4" in capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert doc["machine_differences"] == ["nproc 2 -> 4"]
    line = next(x for x in doc["lines"] if x["metric"] == "per s" and x["target"] != "bare OPA")
    assert line["base"] == {"median": 410.0, "runs": [400.0, 420.0]}
    assert line["change_pct"] == pytest.approx(24.39, abs=0.01)
    assert line["verdict"] == "better"


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "cannot be read"),
        ("{not json", "not JSON"),
        ('{"runs": []}', "not a benchmark result"),
        ("[1, 2]", "not a benchmark result"),
    ],
)
def test_a_file_that_is_not_a_result_exits_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, says: str
) -> None:
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content)
    assert main([str(ROUND6), str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and says in err


def test_figures_of_an_odd_shape_are_left_out_not_fatal() -> None:
    # A hand-edited or truncated file: what is not a number is not compared.
    doc = {"scenarios": {"stages": {"runs": [{"ms": [1, 2]}, {"ms": {"parse": "fast"}}, 3]},
                         "core": {"runs": [{"name": "x", "per_s": True, "p99_ms": None}]},
                         "log": "broken"}}  # fmt: skip
    assert compare(doc, doc) == []


def test_a_paced_row_of_scenario_1_has_no_throughput_or_ratio_but_its_cpu() -> None:
    def result(cpu: float) -> dict[str, Any]:
        rows = [
            {"name": "bare OPA", "run": 1, "per_s": 1500.0, "cpu_ms_per_req": 1.1},
            {"name": "paced OPA", "run": 1, "per_s": 450.0, "rate": 450.0, "cpu_ms_per_req": cpu},
        ]
        return {"scenarios": {"core": {"runs": rows}}}

    lines = _lines(result(1.8), result(1.6))
    assert ("core", "paced OPA", "per s") not in lines
    assert ("core", "paced OPA ÷ bare OPA", "ratio") not in lines
    assert lines[("core", "paced OPA", "cpu ms/req")].new.median == 1.6


def test_scenario_2s_commit_floor_is_compared_by_its_latency_and_cpu() -> None:
    def doc(p99s: tuple[float, ...]) -> dict[str, Any]:
        floor = [
            {"name": "the log's durable commit alone", "run": i, "requests": 1000,
             "per_s": 100.0, "p50_ms": 1.0, "p99_ms": p99, "cpu_ms_per_req": 0.7}
            for i, p99 in enumerate(p99s, start=1)
        ]  # fmt: skip
        return {"machine": {"nproc": 2}, "scenarios": {"admission": {"runs": [],
                "commit_floor": floor}}}  # fmt: skip

    lines = _lines(doc((1.5, 1.8)), doc((4.2, 4.6)))
    target = "the log's durable commit alone"
    assert lines[("admission", target, "p99 ms")].verdict == "worse"
    assert lines[("admission", target, "p50 ms")].verdict == "~"
    assert ("admission", target, "cpu ms/req") in lines
    assert ("admission", target, "per s") not in lines  # its rate is the schedule
