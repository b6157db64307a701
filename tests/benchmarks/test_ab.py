"""``python -m benchmarks.ab`` in a tiny mode: two builds of the real service (a revision in a
git worktree and the working tree), interleaved, and the JSON it writes.

No timing is asserted: figures depend on the machine (issue 9).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks.ab import summarize
from tests.conftest import REPO


def _worktrees() -> str:
    out = subprocess.run(
        ["git", "worktree", "list", "--porcelain"],  # noqa: S607
        cwd=REPO, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout


def _ab(tmp_path: Path, *args: str) -> dict[str, Any]:
    out = tmp_path / "ab.json"
    subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-m", "benchmarks.ab", *args, "--rounds", "2", "--requests", "8",
         "--concurrency", "2", "--json", str(out)],
        cwd=REPO, check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    return dict(json.loads(out.read_text()))


@pytest.mark.opa
def test_a_revision_against_the_working_tree(tmp_path: Path) -> None:
    before = _worktrees()
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,  # noqa: S607
    ).stdout.strip()
    doc = _ab(tmp_path, "HEAD")
    a, b = doc["summary"]
    assert doc["scenario"] == "core"
    assert (a["label"], a["rev"], a["commit"]) == ("A", "HEAD", head)
    assert (b["label"], b["rev"], b["commit"]) == ("B", ".", head + "+working-tree")
    assert a["rounds"] == b["rounds"] == 2 and 0 <= b["rounds_ahead"] <= 2
    for label in ("A", "B"):
        rows = doc["rounds"][label]
        assert [r["round"] for r in rows] == [1, 2]
        assert all(r["ok"] == r["requests"] == 8 for r in rows)  # every answer an allow
        assert all(0 < r["event_loop"]["busy"] <= 1.05 for r in rows)
    assert _worktrees() == before  # the revision's worktree is gone


@pytest.mark.opa
def test_admission_with_a_setting_and_an_interpreter_on_one_side(tmp_path: Path) -> None:
    # The second side's interpreter: this one behind a wrapper that notes each start.
    starts = tmp_path / "starts"
    wrapper = tmp_path / "python-b"
    wrapper.write_text(f'#!/bin/sh\necho "$2 $3" >> {starts}\nexec {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    doc = _ab(
        tmp_path, ".", "--scenario", "admission", "--env-b", "RELEASEGATE_LOG_LEVEL=warning",
        "--python-b", str(wrapper),
    )  # fmt: skip
    a, b = doc["summary"]
    assert doc["scenario"] == "admission"
    assert "RELEASEGATE_LOG_LEVEL" not in a["env"]
    assert b["env"]["RELEASEGATE_LOG_LEVEL"] == "warning"
    assert (a["python"], b["python"]) == (sys.executable, str(wrapper))
    # B's two tokens and its service, and nothing of A's, ran on the wrapper.
    assert sorted(starts.read_text().splitlines()) == [
        "engine.adapters.cli serve",
        "engine.adapters.cli token",
        "engine.adapters.cli token",
    ]
    assert "median_p99_ratio" in b and "median_p99_ratio" not in a
    assert all(r["ok"] == 8 for r in doc["rounds"]["B"])


def test_the_summary_compares_round_by_round() -> None:
    from benchmarks.ab import Side

    rows_a = [{"per_s": 100.0, "p50_ms": 1, "p99_ms": 10.0, "cpu_ms_per_req": 3.0,
               "opa_cpu_ms_per_req": 1.0}, {"per_s": 200.0, "p50_ms": 1, "p99_ms": 10.0,
               "cpu_ms_per_req": 3.0, "opa_cpu_ms_per_req": 1.0}]  # fmt: skip
    rows_b = [dict(rows_a[0], per_s=110.0, cpu_ms_per_req=2.0), dict(rows_a[1], per_s=190.0)]
    sides = [Side("A", "x", "c1", REPO, rows=rows_a), Side("B", "y", "c2", REPO, rows=rows_b)]
    base, new = summarize(sides, "core")
    assert "rounds_ahead" not in base
    assert new["rounds_ahead"] == 1
    assert new["median_throughput_ratio"] == round((1.1 + 0.95) / 2, 3)
    assert new["median_service_cpu_ratio"] == round((0.5 + 1.0) / 2, 3)
    assert new["mean_per_s"] == 150.0
