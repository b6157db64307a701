"""DecisionLog on SQLite: append, chain, queries, proofs, checkpoints, failure modes."""

from __future__ import annotations

import base64
import io
import json
import sqlite3
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.errors import InputError, SignatureError, StoreError
from engine.log.canonical import ZERO_HASH, digest_bytes
from engine.log.decision_log import DecisionLog, open_decision_log
from engine.log.masking import MaskOp, MaskRule
from engine.log.merkle import leaf_hash, verify_consistency, verify_inclusion
from engine.log.record import compute_record_hash
from engine.log.verify import verify_export
from tests.log.helpers import T0, fill, input_doc, make_decision


def test_append_fills_log_and_signature_and_chains(log: DecisionLog) -> None:
    decisions = fill(log, 5)
    prev = ZERO_HASH
    for i, d in enumerate(decisions):
        assert d.log is not None and d.signature is not None
        assert d.log.index == i and d.log.prev_hash == prev
        # What is signed: the 32 raw bytes of the record hash.
        raw = digest_bytes(d.log.record_hash)
        log.keyring.verify(d.signature.key_id, raw, base64.b64decode(d.signature.value))
        record = log.get(d.decision_id)
        assert record is not None and record.decision() == d
        stored = record.model_dump(mode="json")
        assert compute_record_hash(stored) == raw
        assert stored["request"] == {"caller": "ci", "adapter": "check", "dry_run": False}
        assert stored["input"] == input_doc(i)
        assert log.leaf(i) == leaf_hash(raw)
        prev = d.log.record_hash
    assert log.get("no-such-id") is None


def test_masked_paths_are_removed_before_hashing_and_listed(tmp_path: Path) -> None:
    masks = [
        MaskRule("/input/evidence/attestations"),
        MaskRule("/input/approvals/records/*/comment", MaskOp.UPSERT),
    ]
    log = open_decision_log(tmp_path / "s", masks=masks)
    try:
        d = log.append(make_decision(), input_document=input_doc(), caller=None, adapter="api")
        record = log.get(d.decision_id)
        assert record is not None
        assert "token-xyz" not in record.model_dump_json()
        assert record.erased == ["/input/evidence/attestations"]
        assert record.masked == ["/input/approvals/records/0/comment"]
        assert record.input["approvals"]["records"][0]["comment"] == "**REDACTED**"
        out = io.StringIO()
        log.export(out)
        verify_export(out.getvalue().splitlines(), log.keyring)
    finally:
        log.close()


def test_query_filters_and_cursor_pages_newest_first(log: DecisionLog) -> None:
    for n in range(12):
        svc = "payments" if n % 2 == 0 else "search"
        verdict = "pause" if n % 3 == 0 else "allow"
        reasons = ("approval_missing",) if verdict == "pause" else ()
        log.append(
            make_decision(
                n,
                service=svc,
                verdict=verdict,
                reasons=reasons,
                environment="prod" if n < 8 else "staging",
            ),
            input_document={},
            caller="ci",
            adapter="check",
        )
    seen: list[int] = []
    cursor = None
    while True:
        page, cursor = log.query(limit=5, cursor=cursor)
        seen += [r.log.index for r in page if r.log]
        if cursor is None:
            break
    assert seen == list(range(11, -1, -1))
    idx = lambda records: [r.log.index for r in records if r.log]  # noqa: E731
    assert idx(log.query(service="search")[0]) == [11, 9, 7, 5, 3, 1]
    assert idx(log.query(verdict="pause")[0]) == [9, 6, 3, 0]
    assert idx(log.query(reason="approval_missing", service="payments")[0]) == [6, 0]
    assert idx(log.query(environment="staging", service="payments")[0]) == [10, 8]
    assert idx(log.query(release_id="payments-1.4")[0]) == [4]
    assert idx(log.query(artifact_digest="sha256:" + "ab" * 32, limit=2)[0]) == [11, 10]
    since, until = T0 + timedelta(seconds=3), "2026-11-26T12:00:06+00:00"
    assert idx(log.query(since=since, until=until)[0]) == [5, 4, 3]
    assert [r.log.index for r in log.iter_records(service="search", until=until) if r.log] == [
        1,
        3,
        5,
    ]
    with pytest.raises(InputError, match="cursor"):
        log.query(cursor="garbage!")
    with pytest.raises(InputError, match="limit"):
        log.query(limit=0)
    with pytest.raises(InputError, match="since"):
        log.query(since="yesterday")


def test_latest_allow_for_admission(log: DecisionLog) -> None:
    digest = "sha256:" + "12" * 32
    now = T0 + timedelta(hours=1)
    assert log.latest_allow_for(digest, "prod", 3600, now) is None
    old = log.append(
        make_decision(1, digest=digest, at=T0 - timedelta(hours=2)),
        input_document={},
        caller="ci",
        adapter="check",
    )
    good = log.append(
        make_decision(2, digest=digest, at=T0 + timedelta(minutes=30)),
        input_document={},
        caller="ci",
        adapter="api",
    )
    for kwargs, adapter in (
        ({"dry_run": True}, "check"),
        ({"verdict": "pause"}, "check"),
        ({"environment": "staging"}, "check"),
        ({}, "admission"),
    ):
        log.append(
            make_decision(3, digest=digest, at=T0 + timedelta(minutes=40), **kwargs),
            input_document={},
            caller="k8s",
            adapter=adapter,
        )
    found = log.latest_allow_for(digest, "prod", 3600, now)
    assert found is not None and found.decision_id == good.decision_id
    assert log.latest_allow_for(digest, "prod", 60, now) is None
    assert old.log is not None


def test_latest_allow_refuses_a_tampered_record(tmp_path: Path) -> None:
    log = open_decision_log(tmp_path / "s")
    try:
        digest = "sha256:" + "34" * 32
        log.append(
            make_decision(1, digest=digest, verdict="pause"),
            input_document={},
            caller="ci",
            adapter="check",
        )
        _tamper_sql(
            tmp_path / "s" / "log.db",
            "UPDATE log_records SET verdict='allow'",
            lambda r: r.update(verdict="allow"),
        )
        with pytest.raises(SignatureError, match="record hash mismatch"):
            log.latest_allow_for(digest, "prod", 10**9, T0)
    finally:
        log.close()


def _tamper_sql(db: Path, extra_sql: str, edit: Callable[[dict[str, Any]], None]) -> None:
    """Edit the first record's JSON and run ``extra_sql``, as an operator with DB access."""
    with sqlite3.connect(db) as conn:
        idx, body = conn.execute("SELECT idx, body FROM log_records ORDER BY idx").fetchone()
        record = json.loads(body)
        edit(record)
        conn.execute("UPDATE log_records SET body=? WHERE idx=?", (json.dumps(record), idx))
        conn.execute(extra_sql)


def test_inclusion_and_consistency_proofs_verify_against_checkpoints(log: DecisionLog) -> None:
    decisions = fill(log, 11)
    early = log.checkpoint()
    decisions += fill(log, 10, start=11)
    cp = log.checkpoint()
    assert (early.size, cp.size) == (11, 21)
    cp.verify(log.keyring)
    for size, head in ((11, early), (21, cp)):
        for d in decisions[:size]:
            proof = log.inclusion_proof(d.decision_id, size)
            assert proof["root_hash"] == "sha256:" + head.root.hex()
            assert d.log is not None and proof["record_hash"] == d.log.record_hash
            verify_inclusion(
                leaf_hash(digest_bytes(d.log.record_hash)),
                proof["leaf_index"],
                size,
                [base64.b64decode(h) for h in proof["audit_path"]],
                head.root,
            )
    cons = log.consistency_proof(11, 21)
    verify_consistency(11, 21, early.root, cp.root, [base64.b64decode(h) for h in cons["proof"]])
    assert log.inclusion_proof(decisions[0].decision_id)["tree_size"] == 21
    with pytest.raises(InputError, match="tree_size"):
        log.inclusion_proof(decisions[15].decision_id, 11)
    with pytest.raises(InputError, match="tree_size"):
        log.inclusion_proof(decisions[0].decision_id, 99)
    with pytest.raises(InputError, match="decision_id"):
        log.inclusion_proof("nope", 5)
    with pytest.raises(InputError, match="first"):
        log.consistency_proof(0, 5)


def test_store_failure_raises_and_leaves_no_partial_record(tmp_path: Path) -> None:
    log = open_decision_log(tmp_path / "s")
    try:
        fill(log, 3)
        # A conflicting tree node makes the node insert fail after the record insert,
        # inside the same transaction.
        with sqlite3.connect(tmp_path / "s" / "log.db") as conn:
            conn.execute("INSERT INTO log_nodes(level, idx, hash) VALUES (0, 3, x'00')")
        with pytest.raises(StoreError):
            log.append(make_decision(9), input_document={}, caller="ci", adapter="check")
        with sqlite3.connect(tmp_path / "s" / "log.db") as conn:
            assert conn.execute("SELECT count(*) FROM log_records").fetchone() == (3,)
            assert conn.execute("SELECT size FROM log_head").fetchone() == (3,)
            conn.execute("DELETE FROM log_nodes WHERE level=0 AND idx=3")
        # The writer recovers: the next append gets index 3.
        d = log.append(make_decision(10), input_document={}, caller="ci", adapter="check")
        assert d.log is not None and d.log.index == 3
        out = io.StringIO()
        log.export(out)
        assert verify_export(out.getvalue().splitlines(), log.keyring).size == 4
    finally:
        log.close()


def test_bad_input_document_is_an_input_error_and_not_logged(log: DecisionLog) -> None:
    with pytest.raises(InputError, match="canonicalized"):
        log.append(
            make_decision(), input_document={"x": float("inf")}, caller=None, adapter="check"
        )
    assert log.store.head()[0] == 0


def test_append_after_close_is_a_store_error(tmp_path: Path) -> None:
    log = open_decision_log(tmp_path / "s")
    fill(log, 1)
    log.close()
    with pytest.raises(StoreError, match="closed"):
        fill(log, 1)
