"""The approval store is append-only and feeds the pipeline as an ``ApprovalProvider``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import event

from engine.approvals import ApprovalInput, ApprovalStore
from engine.auth.sql import database_url
from engine.errors import InputError
from engine.inputs.base import ApprovalProvider
from engine.models.common import SectionStatus
from engine.models.inputs import ArtifactFacts, ReleaseFacts

DIGEST = "sha256:" + "ab" * 32


def _store(tmp_path: Path) -> ApprovalStore:
    return ApprovalStore(database_url(tmp_path), default_ttl_s=3600, max_ttl_s=7200)


def test_records_are_only_ever_inserted(tmp_path: Path) -> None:
    store = _store(tmp_path)
    statements: list[str] = []
    event.listen(
        store._engine,
        "before_cursor_execute",
        lambda conn, cursor, statement, *rest: statements.append(statement),
    )
    base = ApprovalInput(release_id="r1", artifact_digest=DIGEST, environment="prod")
    first = store.record(base, approver="bob", approver_roles=["approver"])
    store.record(
        ApprovalInput(
            release_id="r1", artifact_digest=DIGEST, environment="prod", kind="revoke",
            revokes=first.id,
        ),
        approver="carol",
        approver_roles=["approver"],
    )  # fmt: skip
    store.record(base, approver="dave", approver_roles=["approver", "auditor"])
    assert [r.approver for r in store.for_release("r1")] == ["bob", "carol", "dave"]
    assert store.get(first.id) == first
    verbs = {s.split()[0].upper() for s in statements}
    assert verbs <= {"INSERT", "SELECT"}, statements
    assert "INSERT" in verbs
    store.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ApprovalStore]:
    """A store on SQLite, and on a real PostgreSQL (psycopg's paramstyle and rows)."""
    if request.param == "sqlite":
        url = database_url(tmp_path)
    else:
        url = request.getfixturevalue("pg_database")
    store = ApprovalStore(url, default_ttl_s=3600, max_ttl_s=7200)
    yield store
    store.close()


def test_collect_is_an_approval_provider(any_store: ApprovalStore) -> None:
    provider: ApprovalProvider = any_store
    first = any_store.record(
        ApprovalInput(release_id="r1", artifact_digest=DIGEST, environment="prod"),
        approver="bob",
        approver_roles=["approver", "auditor"],
    )
    any_store.record(
        ApprovalInput(release_id="r2", artifact_digest=DIGEST, environment="prod"),
        approver="carol",
        approver_roles=["approver"],
    )
    release = ReleaseFacts(id="r1", service="s", environment="prod", stage="deploy")  # type: ignore[arg-type]
    section = provider.collect(release, ArtifactFacts(digest=DIGEST))
    assert section.status is SectionStatus.OK
    assert section.records == [first]
    assert any_store.for_release("nothing") == []
    # A server is a network round trip: the event loop hands the query to a thread.
    assert any_store.may_block is (any_store._engine.dialect.name != "sqlite")


def test_unreadable_store_is_unavailable(tmp_path: Path) -> None:
    # A store that cannot be read yields `unavailable` (Rego pauses), never an exception.
    store = _store(tmp_path)
    with store._engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE approvals")
    release = ReleaseFacts(id="r1", service="s", environment="prod", stage="deploy")  # type: ignore[arg-type]
    section = store.collect(release, ArtifactFacts(digest=DIGEST))
    assert section.status is SectionStatus.UNAVAILABLE
    assert section.records == []
    store.close()


def test_expiry_is_clamped_to_the_configured_maximum(tmp_path: Path) -> None:
    store = _store(tmp_path)
    with pytest.raises(InputError) as err:
        store.record(
            ApprovalInput(
                release_id="r", artifact_digest=DIGEST, environment="p", expires_in_s=7201
            ),
            approver="bob",
            approver_roles=["approver"],
        )
    assert [e.loc for e in err.value.errors] == ["body.expires_in_s"]
    store.close()


def test_on_an_event_loop_reads_see_every_commit_at_once(tmp_path: Path) -> None:
    """The service reads approvals on its event loop with a connection of that thread's own:
    what any connection commits (this store, another store as another replica or the CLI
    would be) is read by the next decision, a revocation included."""
    store, other = _store(tmp_path), _store(tmp_path)
    release = ReleaseFacts(id="r1", service="s", environment="prod", stage="deploy")  # type: ignore[arg-type]
    artifact = ArtifactFacts(digest=DIGEST)
    approve = ApprovalInput(release_id="r1", artifact_digest=DIGEST, environment="prod")

    async def decisions() -> list[list[str]]:
        seen = [[r.kind for r in store.collect(release, artifact).records]]
        first = other.record(approve, approver="bob", approver_roles=["approver"])
        seen.append([r.kind for r in store.collect(release, artifact).records])
        revoke = ApprovalInput(
            release_id="r1", artifact_digest=DIGEST, environment="prod", kind="revoke",
            revokes=first.id,
        )  # fmt: skip
        store.record(revoke, approver="carol", approver_roles=["approver"])
        seen.append([r.kind for r in store.collect(release, artifact).records])
        return seen

    try:
        assert asyncio.run(decisions()) == [[], ["approve"], ["approve", "revoke"]]
        assert len(store._loop_readers) == 1  # the loop's thread kept its connection
        assert asyncio.run(decisions())[0] == ["approve", "revoke"]
        assert len(store._loop_readers) == 1  # the same thread, the same connection
    finally:
        other.close()
        store.close()
    assert store._loop_readers == {}


def test_a_closed_store_reads_on_no_loop_connection(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.close()

    async def read() -> None:
        assert store._loop_reader() is None

    asyncio.run(read())


def test_a_sqlite_url_with_options_reads_through_the_pool_on_the_loop(tmp_path: Path) -> None:
    # A URI filename or other options are the engine's to interpret: no loop reader then.
    path = tmp_path / "log.db"
    store = ApprovalStore(f"sqlite:///file:{path}?uri=true", default_ttl_s=3600, max_ttl_s=7200)
    store.record(
        ApprovalInput(release_id="r1", artifact_digest=DIGEST, environment="prod"),
        approver="bob",
        approver_roles=["approver"],
    )

    async def read() -> list[str]:
        assert store._loop_reader() is None
        return [r.approver for r in store.for_release("r1")]

    try:
        assert asyncio.run(read()) == ["bob"]
    finally:
        store.close()
