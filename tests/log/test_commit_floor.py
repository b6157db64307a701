"""``python -m engine.log.commit_floor``: a logged record's durable commit, alone and paced."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.log.commit_floor import quantile, time_commits
from engine.log.decision_log import DecisionLog, open_decision_log
from engine.log.record import DecisionRecordV1
from engine.log.verify import verify_export
from tests.log.helpers import REPO, input_doc, make_decision


@pytest.fixture
def record(log: DecisionLog) -> DecisionRecordV1:
    """A record as the service logs it (signed, with its input), read back."""
    decision = log.append(
        make_decision(reasons=("exception_used",)),
        input_document=input_doc(),
        caller="admission-controller",
        adapter="admission",
    )
    stored = log.get(decision.decision_id)
    assert stored is not None
    return stored


def test_each_commit_is_a_copy_of_the_record_in_its_own_transaction(
    record: DecisionRecordV1, tmp_path: Path
) -> None:
    state = tmp_path / "floor"
    row = time_commits(state, record, rate=500.0, count=12)
    assert row["requests"] == 12 and row["name"] == "the log's durable commit alone"
    assert 0 < row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"] <= row["max_ms"]
    assert row["cpu_ms_per_req"] > 0
    assert row["record_bytes"] == len(record.model_dump_json())
    log = open_decision_log(state)
    try:
        out = io.StringIO()
        log.export(out)
        lines = out.getvalue().splitlines()
        assert verify_export(lines, log.keyring).size == 12
        copies = [c for c in map(json.loads, lines) if "decision_id" in c]  # not the head
    finally:
        log.close()
    # Fresh ids, one per copy; the rest of the decision and its input as the record had them.
    assert len({c["decision_id"] for c in copies}) == 12
    assert record.decision_id not in {c["decision_id"] for c in copies}
    for c in copies:
        assert c["input"] == record.input and c["request"] == record.request.model_dump()
        assert [r["code"] for r in c["reasons"]] == ["exception_used"]
        assert c["release"] == record.release and c["verdict"] == record.verdict.value


def test_the_command_refuses_a_used_state_directory_and_writes_json(
    record: DecisionRecordV1, tmp_path: Path
) -> None:
    record_file = tmp_path / "record.json"
    record_file.write_text(record.model_dump_json())
    used = tmp_path / "used"
    used.mkdir()
    (used / "log.db").write_text("")
    base = [sys.executable, "-m", "engine.log.commit_floor", str(record_file)]
    refused = subprocess.run(
        [*base, "--state-dir", str(used)], cwd=REPO, capture_output=True, text=True
    )
    assert refused.returncode == 2 and "is not empty" in refused.stderr
    out = tmp_path / "floor.json"
    ran = subprocess.run(
        [*base, "--state-dir", str(tmp_path / "new"), "--count", "3", "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "the log's durable commit alone: 3 at" in ran.stdout
    assert json.loads(out.read_text())["requests"] == 3


def test_quantile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (quantile(values, 0.5), quantile(values, 0.99), quantile(values, 1.0)) == (50, 99, 100)
    assert quantile([7.0], 0.99) == 7.0


def test_a_rate_or_count_out_of_range_is_refused(record: DecisionRecordV1, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="rate"):
        time_commits(tmp_path / "a", record, rate=0, count=3)
    with pytest.raises(ValueError, match="count"):
        time_commits(tmp_path / "b", record, rate=100, count=0)
