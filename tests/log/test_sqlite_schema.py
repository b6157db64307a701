"""The SQLite log's tables keep one B-tree each where SQLite allows it.

A record's ``idx`` is the table's rowid (no separate index on it), and the reason and Merkle
node tables are ``WITHOUT ROWID`` (their primary key is the table). A log created with the
schema before that (round 15 and earlier: ``idx BIGINT``, rowid tables) keeps working.
"""

from __future__ import annotations

import io
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from engine.log.decision_log import DecisionLog, open_decision_log
from engine.log.verify import verify_export
from tests.log.helpers import fill, make_decision

# The DDL SQLAlchemy emitted for these tables until round 16 (`engine/log/tables.py` then).
EARLIER_SCHEMA = """
CREATE TABLE log_head (
    id INTEGER NOT NULL, size BIGINT NOT NULL, last_hash VARCHAR(80) NOT NULL,
    PRIMARY KEY (id));
CREATE TABLE log_nodes (
    level SMALLINT NOT NULL, idx BIGINT NOT NULL, hash BLOB NOT NULL,
    PRIMARY KEY (level, idx));
CREATE TABLE log_reasons (
    code VARCHAR(128) NOT NULL, idx BIGINT NOT NULL, PRIMARY KEY (code, idx));
CREATE TABLE log_records (
    idx BIGINT NOT NULL, decision_id VARCHAR(64) NOT NULL, ts VARCHAR(32) NOT NULL,
    service VARCHAR(1024) NOT NULL, environment VARCHAR(1024) NOT NULL,
    verdict VARCHAR(16) NOT NULL, release_id VARCHAR(1024) NOT NULL,
    artifact_digest VARCHAR(80) NOT NULL, adapter VARCHAR(64) NOT NULL,
    dry_run BOOLEAN NOT NULL, record_hash VARCHAR(80) NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (idx), UNIQUE (decision_id));
CREATE INDEX ix_log_records_artifact ON log_records (artifact_digest, environment, idx);
CREATE INDEX ix_log_records_ts ON log_records (ts);
CREATE INDEX ix_log_records_service_env ON log_records (service, environment, idx);
CREATE INDEX ix_log_records_release ON log_records (release_id, idx);
"""


def _btrees(db: Path) -> dict[str, list[str]]:
    """Each log table's B-trees: the table's own (unless WITHOUT ROWID) and its indexes."""
    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            "SELECT type, name, tbl_name FROM sqlite_master WHERE rootpage > 0"
        ).fetchall()
    out: dict[str, list[str]] = {}
    for kind, name, table in rows:
        out.setdefault(table, []).append(f"{kind} {name}")
    return out


def _without_rowid(db: Path, table: str) -> bool:
    with closing(sqlite3.connect(db)) as conn:
        try:
            conn.execute(f"SELECT rowid FROM {table}")  # noqa: S608 - a fixed table name
        except sqlite3.OperationalError as exc:
            assert "rowid" in str(exc)
            return True
    return False


def test_a_new_log_keeps_idx_as_the_rowid_and_reasons_and_nodes_without_rowid(
    tmp_path: Path,
) -> None:
    log = open_decision_log(tmp_path / "state")
    try:
        fill(log, 3)
    finally:
        log.close()
    db = tmp_path / "state" / "log.db"
    btrees = _btrees(db)
    # The table itself, the unique decision_id and the four query indexes: no index on idx.
    assert sorted(btrees["log_records"]) == [
        "index ix_log_records_artifact",
        "index ix_log_records_release",
        "index ix_log_records_service_env",
        "index ix_log_records_ts",
        "index sqlite_autoindex_log_records_1",
        "table log_records",
    ]
    with closing(sqlite3.connect(db)) as conn:
        unique = [
            [c[2] for c in conn.execute(f"PRAGMA index_info({row[1]})")]
            for row in conn.execute("PRAGMA index_list(log_records)")
            if row[1].startswith("sqlite_autoindex")
        ]
        assert unique == [["decision_id"]]
        assert conn.execute("SELECT idx FROM log_records ORDER BY idx").fetchall() == [
            (0,),
            (1,),
            (2,),
        ]
        assert conn.execute("SELECT rowid FROM log_records ORDER BY idx").fetchall() == [
            (0,),
            (1,),
            (2,),
        ]
    assert btrees["log_nodes"] == ["table log_nodes"]
    assert btrees["log_reasons"] == ["table log_reasons"]
    assert _without_rowid(db, "log_nodes") and _without_rowid(db, "log_reasons")
    assert not _without_rowid(db, "log_records")


@pytest.fixture
def earlier_log(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    state.mkdir()
    with closing(sqlite3.connect(state / "log.db")) as conn:
        conn.executescript(EARLIER_SCHEMA)
    return state


def test_a_log_made_with_the_earlier_schema_is_appended_queried_and_verified(
    earlier_log: Path,
) -> None:
    log: DecisionLog = open_decision_log(earlier_log)
    try:
        first = fill(log, 6)
        log.append(
            make_decision(6, verdict="pause", reasons=("approval_missing",)),
            input_document={},
            caller="ci",
            adapter="check",
        )
        page, _ = log.query(reason="approval_missing")
        assert [r.log.index for r in page if r.log] == [6]
        record = log.get(first[2].decision_id)
        assert record is not None and record.decision() == first[2]
        out = io.StringIO()
        log.export(out)
        assert verify_export(out.getvalue().splitlines(), log.keyring).size == 7
        assert log.inclusion_proof(first[0].decision_id)["tree_size"] == 7
    finally:
        log.close()
    # The tables were not recreated: they still have the earlier layout.
    assert "index sqlite_autoindex_log_records_1" in _btrees(earlier_log / "log.db")["log_records"]
    assert not _without_rowid(earlier_log / "log.db", "log_nodes")
