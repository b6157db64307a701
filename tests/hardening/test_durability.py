"""Crash durability (``kill -9`` of ``releasegate serve`` under 8 concurrent clients, then a
restart on the same state) and several services appending to one PostgreSQL: the log
exports and verifies, has no gaps or forks, and holds every decision a client received."""

from __future__ import annotations

from pathlib import Path

import pytest

from hardening import durability
from hardening.figures import Figures


def test_kill_9_under_load_loses_no_received_decision(tmp_path: Path, figures: Figures) -> None:
    report = durability.crash_rounds(tmp_path, figures, rounds=1, threads=8, per_round=40)
    assert report.problems == []
    assert report.intact and report.lost == 0
    assert report.received >= 40 + 3
    # Decisions in flight at the kill may be logged without a receipt, never the reverse.
    assert report.log_size >= report.received


@pytest.mark.postgres
def test_services_sharing_postgres_append_one_log(
    tmp_path: Path, figures: Figures, postgres_server: str
) -> None:
    with durability.postgres_database(postgres_server) as db:
        report = durability.shared_postgres(
            tmp_path, figures, db, services=3, threads=3, requests=24, kill_one=True
        )
    assert report.problems == []
    assert report.intact and report.lost == 0
    assert report.received >= 2 * 24
    assert report.log_size >= report.received
