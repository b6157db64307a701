"""``python -m benchmarks.instructions``: the service's own instructions per request, counted
by valgrind around the real app (managed OPA, SQLite log)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import instructions
from benchmarks.instructions import instruction_count, main


def test_the_admission_route_is_counted_under_valgrind(
    opa_binary: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "instructions.json"
    argv = ["--route", "admission", "--requests", "10", "--warmup", "2", "--json", str(out)]
    assert main(argv) == 0
    figures = json.loads(out.read_text())["routes"]["admission"]
    # Ten more admissions than the warm-up run, each a million instructions or more for the
    # service's process (2.5 million in runs this short, about 3 in the default 200): the
    # background work of two runs of a few seconds differs by a few million, which ten
    # admissions outweigh. Any answer but 200 fails the run (the next test).
    assert figures["instructions_measured_run"] > figures["instructions_warmup_run"]
    assert figures["instructions_per_request"] > 1_000_000
    assert figures["requests"] == 10
    printed = capsys.readouterr().out
    assert f"{figures['instructions_per_request']:,}" in printed
    assert "POST /v1/admission/staging" in printed


def test_a_route_that_fails_under_valgrind_is_an_error_not_a_figure(
    opa_binary: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An OPA that exits at once: the app cannot decide: the child raises, the count fails.
    monkeypatch.setenv("RELEASEGATE_OPA", "/bin/false")
    with pytest.raises(RuntimeError, match="admission run under valgrind failed"):
        instructions.measure(["admission"], warmup=0, requests=1)


def test_without_valgrind_the_command_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["--route", "admission", "--requests", "1"]) == 2
    assert "valgrind is not installed" in capsys.readouterr().err


def test_the_count_is_cachegrinds_summary_line() -> None:
    text = "desc: I1 cache:\ncmd: python\nevents: Ir\nfl=x\n1 5\nsummary: 3054078\n"
    assert instruction_count(text) == 3_054_078
    with pytest.raises(ValueError, match="summary"):
        instruction_count("events: Ir\n")
