"""The decision log on a real PostgreSQL server."""

from __future__ import annotations

import io
from pathlib import Path

import psycopg
import pytest

from engine.errors import StoreError
from engine.log.decision_log import open_decision_log
from engine.log.verify import ExportVerificationError, verify_export
from tests.log.helpers import fill, make_decision

pytestmark = pytest.mark.postgres


def test_append_query_proofs_export_verify(tmp_path: Path, pg_database: str) -> None:
    log = open_decision_log(tmp_path / "s", database_url=pg_database)
    try:
        decisions = fill(log, 20)
        decisions.append(
            log.append(
                make_decision(99, verdict="pause", reasons=("approval_missing",)),
                input_document={},
                caller="ci",
                adapter="check",
            )
        )
        page, cursor = log.query(limit=8)
        assert [r.log.index for r in page if r.log] == list(range(20, 12, -1)) and cursor
        page, _ = log.query(reason="approval_missing")
        assert [r.decision_id for r in page] == [decisions[-1].decision_id]
        assert log.inclusion_proof(decisions[3].decision_id, 9)["leaf_index"] == 3
        assert len(log.consistency_proof(5, 21)["proof"]) > 0
        out = io.StringIO()
        log.export(out)
        assert verify_export(out.getvalue().splitlines(), log.keyring).size == 21
    finally:
        log.close()


def test_update_in_postgres_is_caught_by_verify(tmp_path: Path, pg_database: str) -> None:
    log = open_decision_log(tmp_path / "s", database_url=pg_database)
    try:
        fill(log, 5)
        with psycopg.connect(pg_database.replace("+psycopg", "")) as conn:
            conn.execute(
                'UPDATE log_records SET body = replace(body, \'"verdict":"allow"\', '
                '\'"verdict":"rollback"\') WHERE idx = 2'
            )
        out = io.StringIO()
        log.export(out)
        with pytest.raises(ExportVerificationError) as info:
            verify_export(out.getvalue().splitlines(), log.keyring)
        assert info.value.index == 2
    finally:
        log.close()


def test_database_failure_is_a_store_error_and_nothing_partial(
    tmp_path: Path, pg_database: str
) -> None:
    log = open_decision_log(tmp_path / "s", database_url=pg_database)
    try:
        fill(log, 3)
        with psycopg.connect(pg_database.replace("+psycopg", "")) as conn:
            conn.execute("INSERT INTO log_nodes(level, idx, hash) VALUES (0, 3, '\\x00')")
        with pytest.raises(StoreError):
            fill(log, 1)
        assert log.store.head()[0] == 3
        with psycopg.connect(pg_database.replace("+psycopg", "")) as conn:
            assert conn.execute("SELECT count(*) FROM log_records").fetchone() == (3,)
    finally:
        log.close()


def test_unreachable_server_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open the decision log database"):
        open_decision_log(
            tmp_path / "s", database_url="postgresql+psycopg://postgres@127.0.0.1:1/none"
        )
