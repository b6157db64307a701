"""Tampering with an export or with the database is detected at the right record."""

from __future__ import annotations

import io
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from engine.log.checkpoint import SignedCheckpoint
from engine.log.decision_log import DecisionLog, open_decision_log
from engine.log.record import hash_body, seal
from engine.log.signing import Ed25519Signer, KeyRing
from engine.log.verify import ExportVerificationError, verify_export
from tests.log.helpers import fill


def export_lines(log: DecisionLog) -> list[str]:
    out = io.StringIO()
    log.export(out)
    return out.getvalue().splitlines()


def records(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines[:-1]]


def dump(recs: list[dict[str, Any]], checkpoint_line: str) -> list[str]:
    return [json.dumps(r) for r in recs] + [checkpoint_line]


def failure(lines: list[str], ring: KeyRing, **kwargs: Any) -> ExportVerificationError:
    with pytest.raises(ExportVerificationError) as info:
        verify_export(lines, ring, **kwargs)
    return info.value


@pytest.fixture
def ten(log: DecisionLog) -> tuple[DecisionLog, list[str]]:
    fill(log, 10)
    lines = export_lines(log)
    assert verify_export(lines, log.keyring).size == 10
    return log, lines


def test_edit_a_field(ten: tuple[DecisionLog, list[str]]) -> None:
    log, lines = ten
    recs = records(lines)
    recs[4]["verdict"] = "rollback"
    err = failure(dump(recs, lines[-1]), log.keyring)
    assert err.index == 4 and "record_hash does not match" in err.message


def test_edit_the_input_document(ten: tuple[DecisionLog, list[str]]) -> None:
    log, lines = ten
    recs = records(lines)
    recs[9]["input"]["score"] = 0.25
    assert failure(dump(recs, lines[-1]), log.keyring).index == 9


def test_delete_a_row(ten: tuple[DecisionLog, list[str]]) -> None:
    log, lines = ten
    recs = records(lines)
    del recs[6]
    err = failure(dump(recs, lines[-1]), log.keyring)
    assert err.index == 6 and "expected log.index 6, found 7" in err.message


def test_swap_two_rows(ten: tuple[DecisionLog, list[str]]) -> None:
    log, lines = ten
    recs = records(lines)
    recs[2], recs[5] = recs[5], recs[2]
    err = failure(dump(recs, lines[-1]), log.keyring)
    assert err.index == 2 and "found 5" in err.message


def test_swap_rows_and_renumber_breaks_the_chain(ten: tuple[DecisionLog, list[str]]) -> None:
    log, lines = ten
    recs = records(lines)
    recs[2], recs[3] = recs[3], recs[2]
    recs[2]["log"]["index"], recs[3]["log"]["index"] = 2, 3
    err = failure(dump(recs, lines[-1]), log.keyring)
    assert err.index == 2 and "prev_hash" in err.message


def test_truncate_the_tail_of_the_file(ten: tuple[DecisionLog, list[str]]) -> None:
    log, lines = ten
    err = failure(lines[:8] + [lines[-1]], log.keyring)
    assert err.index == 8 and "tail truncated" in err.message


def test_truncate_the_log_vs_a_kept_checkpoint(log: DecisionLog) -> None:
    fill(log, 7)
    short = export_lines(log)  # an intact export of 7 records, served later
    fill(log, 3, start=7)
    kept = SignedCheckpoint.from_json(json.loads(export_lines(log)[-1]))
    assert verify_export(short, log.keyring).size == 7
    err = failure(short, log.keyring, since_checkpoint=kept)
    assert err.index == 7 and "kept checkpoint covers 10" in err.message


def test_replace_a_signature(ten: tuple[DecisionLog, list[str]]) -> None:
    log, lines = ten
    recs = records(lines)
    recs[3]["signature"]["value"] = recs[2]["signature"]["value"]
    err = failure(dump(recs, lines[-1]), log.keyring)
    assert err.index == 3 and "signature does not verify" in err.message


def test_resign_with_an_unknown_key(ten: tuple[DecisionLog, list[str]]) -> None:
    log, lines = ten
    recs = records(lines)
    body = hash_body(recs[5])
    body["verdict"] = "allow"
    del body["log"]
    forged, _ = seal(body, 5, recs[5]["log"]["prev_hash"], Ed25519Signer.generate())
    recs[5] = forged
    err = failure(dump(recs, lines[-1]), log.keyring)
    assert err.index == 5 and "unknown key" in err.message


def test_serve_an_older_checkpoint(log: DecisionLog) -> None:
    fill(log, 7)
    old_checkpoint = export_lines(log)[-1]
    fill(log, 3, start=7)
    lines = export_lines(log)
    err = failure(lines[:-1] + [old_checkpoint], log.keyring)
    assert err.index == 7 and "checkpoint is older" in err.message


def test_forged_or_unsigned_checkpoint(ten: tuple[DecisionLog, list[str]]) -> None:
    log, lines = ten
    cp = json.loads(lines[-1])
    cp["size"] = 9
    err = failure(lines[:-1] + [json.dumps(cp)], log.keyring)
    assert err.index is None and "checkpoint" in err.message
    assert "no checkpoint" in failure([], log.keyring).message


def test_fork_the_log(tmp_path: Path) -> None:
    # Two logs sharing a 6-record prefix and the key (a restored backup that kept going).
    a = open_decision_log(tmp_path / "a")
    fill(a, 6)
    a.close()
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    a, b = open_decision_log(tmp_path / "a"), open_decision_log(tmp_path / "b")
    try:
        prefix_cp = SignedCheckpoint.from_json(json.loads(export_lines(a)[-1]))
        fill(a, 1, start=100)
        a7 = SignedCheckpoint.from_json(json.loads(export_lines(a)[-1]))
        fill(a, 2, start=101)
        fill(b, 3, start=200)
        lines_a, lines_b = export_lines(a), export_lines(b)
        cp_a = SignedCheckpoint.from_json(json.loads(lines_a[-1]))
        ring = a.keyring
        assert verify_export(lines_b, ring).size == 9
        # Records of one branch under the checkpoint of the other.
        err = failure(lines_b[:-1] + [lines_a[-1]], ring)
        assert err.index is None and "Merkle root" in err.message
        # The auditor kept a checkpoint of branch A; branch B is served now.
        err = failure(lines_b, ring, since_checkpoint=cp_a)
        assert "forked" in err.message
        assert "forked" in failure(lines_b, ring, since_checkpoint=a7).message
        # A checkpoint from before the fork is consistent with both branches.
        assert verify_export(lines_b, ring, since_checkpoint=prefix_cp).consistent_with == 6
        assert verify_export(lines_a, ring, since_checkpoint=prefix_cp).consistent_with == 6
    finally:
        a.close()
        b.close()


def _db(log: DecisionLog, tmp_path: Path) -> sqlite3.Connection:
    return sqlite3.connect(tmp_path / "state" / "log.db")


def test_update_a_row_in_the_database_is_caught(
    ten: tuple[DecisionLog, list[str]], tmp_path: Path
) -> None:
    log, _ = ten
    with _db(log, tmp_path) as conn:
        body = json.loads(conn.execute("SELECT body FROM log_records WHERE idx=3").fetchone()[0])
        body["verdict"] = "rollback"
        conn.execute(
            "UPDATE log_records SET body=?, verdict='rollback' WHERE idx=3", (json.dumps(body),)
        )
    err = failure(export_lines(log), log.keyring)
    assert err.index == 3 and "record_hash" in err.message


def test_update_hash_and_chain_in_the_database_is_caught(
    ten: tuple[DecisionLog, list[str]], tmp_path: Path
) -> None:
    log, _ = ten
    with _db(log, tmp_path) as conn:
        body = json.loads(conn.execute("SELECT body FROM log_records WHERE idx=3").fetchone()[0])
        body["dry_run"] = True
        from engine.log.record import compute_record_hash

        body["log"]["record_hash"] = "sha256:" + compute_record_hash(body).hex()
        conn.execute("UPDATE log_records SET body=? WHERE idx=3", (json.dumps(body),))
    err = failure(export_lines(log), log.keyring)
    assert err.index == 3 and "signature does not verify" in err.message


def test_delete_a_row_in_the_database_is_caught(
    ten: tuple[DecisionLog, list[str]], tmp_path: Path
) -> None:
    log, _ = ten
    with _db(log, tmp_path) as conn:
        conn.execute("DELETE FROM log_records WHERE idx=4")
    err = failure(export_lines(log), log.keyring)
    assert err.index == 4 and "found 5" in err.message


def test_key_rotation_keeps_old_records_verifiable(tmp_path: Path) -> None:
    from engine.log.keystore import generate_signing_key, load_keyring

    state = tmp_path / "rot"
    log = open_decision_log(state)
    fill(log, 3)
    kept = export_lines(log)[-1]
    old_key = log.signer.key_id
    log.close()
    generate_signing_key(state)
    log = open_decision_log(state, create_key=False)
    try:
        assert log.signer.key_id != old_key
        fill(log, 3, start=3)
        lines = export_lines(log)
        ring = load_keyring(state)
        report = verify_export(lines, ring, since_checkpoint=SignedCheckpoint.from_text(kept))
        assert report.key_ids == tuple(sorted([old_key, log.signer.key_id]))
        # The auditor holding only the new public key cannot vouch for the old records.
        only_new = KeyRing()
        only_new.add(log.signer.public_key)
        err = failure(lines, only_new)
        assert err.index == 0 and "unknown key" in err.message
        # A kept checkpoint saved as a bare signed note works too.
        note_only = SignedCheckpoint.from_text(json.loads(kept)["note"])
        assert verify_export(lines, ring, since_checkpoint=note_only).consistent_with == 3
    finally:
        log.close()
