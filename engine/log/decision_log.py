"""``DecisionLog``: the facade the service, the adapters and the CLI write and read through."""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from engine.errors import InputError, SignatureError
from engine.log.canonical import CanonicalCache, digest_bytes
from engine.log.checkpoint import SignedCheckpoint
from engine.log.keystore import load_signing_key
from engine.log.masking import MaskRule, apply_masks
from engine.log.merkle import (
    NodeKey,
    NodeReader,
    consistency_proof,
    inclusion_proof,
    plan_nodes,
    root_hash,
)
from engine.log.record import (
    DecisionRecordV1,
    RequestMeta,
    canonical_members,
    compute_record_hash,
    draft_body,
    log_and_signature,
    normalize_timestamp,
    seal,
)
from engine.log.signing import KeyRing, Signer
from engine.log.store import QueryFilter, RecordStore, SqlRecordStore
from engine.log.writer import RecordDraft
from engine.models.decision import Decision

DEFAULT_ORIGIN = "releasegate.local/decision-log"
LOG_DB_FILE = "log.db"
MAX_PAGE = 1000


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True)
class QueryPage:
    """One page of a query, newest first; ``next_cursor`` is None on the last page."""

    records: list[DecisionRecordV1]
    next_cursor: str | None

    def to_json(self) -> dict[str, Any]:
        """The ``GET /v1/decisions`` body: ``{"records": [...], "next_cursor": ...}``."""
        return {
            "records": [r.model_dump(mode="json") for r in self.records],
            "next_cursor": self.next_cursor,
        }


def _encode_cursor(before: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"before": before}).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        doc = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        before = doc["before"]
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise InputError("cursor: not a cursor returned by a previous query") from exc
    if not isinstance(before, int) or before < 0:
        raise InputError("cursor: not a cursor returned by a previous query")
    return before


class DecisionLog:
    """Append, query, prove and export signed decision records."""

    def __init__(
        self,
        store: RecordStore,
        signer: Signer,
        keyring: KeyRing,
        *,
        origin: str = DEFAULT_ORIGIN,
        masks: Sequence[MaskRule] = (),
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.store = store
        self.signer = signer
        self.keyring = keyring
        self.origin = origin
        self.masks = list(masks)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._members = CanonicalCache()  # record members that repeat across decisions
        if signer.key_id not in keyring:
            keyring.add(signer.public_key)

    def close(self) -> None:
        """Finish pending appends and release the database."""
        self.store.close()

    def commit_alone_on_the_loop(self, alone: Callable[[], bool]) -> None:
        """A record appended from an event loop while ``alone()`` (the caller's request is the
        only one in flight) commits on the loop, not on the commit thread (SQLite's store:
        :class:`engine.log.loop_commit.LoopGroupCommit`; other stores ignore it)."""
        setting = getattr(self.store, "commit_alone_on_the_loop", None)
        if setting is not None:
            setting(alone)

    @property
    def may_block(self) -> bool:
        """Whether a read may wait on a database server (not just a local SQLite file)."""
        return not getattr(self.store, "is_sqlite", False)

    def append(
        self,
        decision: Decision,
        *,
        input_document: dict[str, Any],
        caller: str | None,
        adapter: str,
        input_canonical: bytes | None = None,
    ) -> Decision:
        """Mask, seal, sign and durably append; returns ``decision`` with log and signature.

        ``input_canonical``, the caller's RFC 8785 encoding of ``input_document``, is reused
        for the record's ``input`` member when no mask changed the document. The document is
        not copied: it must not change until this returns (the record is written by then).

        Raises :class:`StoreError` when the record cannot be committed: the caller must
        then return no verdict (HTTP 503).
        """
        draft = self._draft(
            decision,
            input_document=input_document,
            caller=caller,
            adapter=adapter,
            input_canonical=input_canonical,
        )
        return _with_record(decision, self.store.append(draft, self._seal))

    async def append_async(
        self,
        decision: Decision,
        *,
        input_document: dict[str, Any],
        caller: str | None,
        adapter: str,
        input_canonical: bytes | None = None,
    ) -> Decision:
        """``append`` from an event loop: the record is drafted here, the commit awaited."""
        draft = self._draft(
            decision,
            input_document=input_document,
            caller=caller,
            adapter=adapter,
            input_canonical=input_canonical,
        )
        return _with_record(decision, await self.store.append_async(draft, self._seal))

    def _draft(
        self,
        decision: Decision,
        *,
        input_document: dict[str, Any],
        caller: str | None,
        adapter: str,
        input_canonical: bytes | None,
    ) -> RecordDraft:
        """Mask the input and encode every record member but ``log`` (the writer adds it)."""
        request = RequestMeta(caller=caller, adapter=adapter, dry_run=decision.dry_run)
        if self.masks:
            masked = apply_masks({"input": input_document}, self.masks)
            # apply_masks works on a deep copy: the draft need not copy it again.
            body = draft_body(
                decision,
                input_document=masked.document.get("input", {}),
                request=request,
                erased=masked.erased,
                masked=masked.masked,
                copy_input=False,
            )
        else:
            body = draft_body(
                decision,
                input_document=input_document,
                request=request,
                erased=[],
                masked=[],
                copy_input=False,
            )
        known = {} if self.masks or input_canonical is None else {"input": input_canonical}
        return RecordDraft(
            body=body,
            members=canonical_members(body, known=known, cache=self._members),
            decision_id=decision.decision_id,
            ts=normalize_timestamp(decision.timestamp, what="decision.timestamp"),
            service=str(decision.release.get("service", "")),
            environment=str(decision.release.get("environment", "")),
            verdict=decision.verdict.value,
            release_id=str(decision.release.get("id", "")),
            artifact_digest=str(decision.artifact.get("digest", "")),
            adapter=adapter,
            dry_run=decision.dry_run,
            reasons=tuple(r.code for r in decision.reasons),
        )

    def _seal(self, draft: RecordDraft, index: int, prev: str) -> tuple[dict[str, Any], bytes]:
        return seal(draft.body, index, prev, self.signer, members=draft.members)

    # -- reads ----------------------------------------------------------------------

    def get(self, decision_id: str) -> DecisionRecordV1 | None:
        """The record of ``decision_id``, or None."""
        index = self.store.index_of(decision_id)
        body = None if index is None else self.store.get_body(index)
        return None if body is None else DecisionRecordV1.model_validate_json(body)

    def query(
        self,
        *,
        service: str | None = None,
        environment: str | None = None,
        verdict: str | None = None,
        release_id: str | None = None,
        artifact_digest: str | None = None,
        reason: str | None = None,
        since: str | datetime | None = None,
        until: str | datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[DecisionRecordV1], str | None]:
        """Records matching every given filter, newest first, ``since <= t < until``."""
        if not 1 <= limit <= MAX_PAGE:
            raise InputError(f"limit: must be between 1 and {MAX_PAGE}")
        flt = QueryFilter(
            service=service,
            environment=environment,
            verdict=verdict,
            release_id=release_id,
            artifact_digest=artifact_digest,
            reason=reason,
            since=None if since is None else normalize_timestamp(since, what="since"),
            until=None if until is None else normalize_timestamp(until, what="until"),
        )
        before = None if cursor is None else _decode_cursor(cursor)
        rows = self.store.query(flt, limit=limit + 1, before=before)
        more = len(rows) > limit
        rows = rows[:limit]
        records = [DecisionRecordV1.model_validate_json(body) for _, body in rows]
        return records, (_encode_cursor(rows[-1][0]) if more else None)

    def query_page(self, **filters: Any) -> QueryPage:
        """:meth:`query` as a :class:`QueryPage` (for the API)."""
        records, cursor = self.query(**filters)
        return QueryPage(records, cursor)

    def iter_records(
        self,
        *,
        since: str | datetime | None = None,
        until: str | datetime | None = None,
        service: str | None = None,
        environment: str | None = None,
    ) -> Iterator[DecisionRecordV1]:
        """Matching records oldest first (for replay)."""
        flt = QueryFilter(
            service=service,
            environment=environment,
            since=None if since is None else normalize_timestamp(since, what="since"),
            until=None if until is None else normalize_timestamp(until, what="until"),
        )
        size, _ = self.store.head()
        for _, body in self.store.scan(flt, start=0, end=size):
            yield DecisionRecordV1.model_validate_json(body)

    def latest_allow_for(
        self, artifact_digest: str, environment: str, max_age_s: float, now: datetime
    ) -> Decision | None:
        """The newest signed, non-dry-run ``allow`` for this digest and environment,
        decided by a ``check`` (any adapter but ``admission``) within ``max_age_s``.

        The record's hash and signature are re-verified before it is trusted.
        """
        flt = QueryFilter(
            artifact_digest=artifact_digest,
            environment=environment,
            verdict="allow",
            exclude_adapter="admission",
            dry_run=False,
            since=normalize_timestamp(now - timedelta(seconds=max_age_s)),
        )
        rows = self.store.query(flt, limit=1, before=None)
        if not rows:
            return None
        raw = json.loads(rows[0][1])
        self._verify_record(raw)
        return DecisionRecordV1.model_validate(raw).decision()

    def _verify_record(self, raw: dict[str, Any]) -> None:
        claimed = digest_bytes(raw["log"]["record_hash"], what="log.record_hash")
        if compute_record_hash(raw) != claimed:
            raise SignatureError(f"record {raw['log']['index']}: record hash mismatch")
        sig = base64.b64decode(raw["signature"]["value"])
        self.keyring.verify(raw["signature"]["key_id"], claimed, sig)

    # -- tree -----------------------------------------------------------------------

    def _with_nodes(self, compute: Callable[[NodeReader], Any]) -> Any:
        keys: set[NodeKey] = plan_nodes(compute)
        got = self.store.read_nodes(keys)
        return compute(lambda level, index: got[(level, index)])

    def _size_arg(self, tree_size: int | None, what: str) -> int:
        size, _ = self.store.head()
        if tree_size is None:
            return size
        if not 0 <= tree_size <= size:
            raise InputError(f"{what}: must be between 0 and the log size {size}")
        return tree_size

    def checkpoint(self) -> SignedCheckpoint:
        """A freshly signed checkpoint of the current tree."""
        size, _ = self.store.head()
        root: bytes = self._with_nodes(lambda read: root_hash(size, read))
        stamp = normalize_timestamp(self._clock())
        return SignedCheckpoint.create(
            origin=self.origin, size=size, root=root, timestamp=stamp, signer=self.signer
        )

    def inclusion_proof(self, decision_id: str, tree_size: int | None = None) -> dict[str, Any]:
        """RFC 9162 inclusion proof of a record in the tree of ``tree_size`` (default: now).

        ``{decision_id, leaf_index, tree_size, record_hash, leaf_hash, audit_path,
        root_hash}``; hashes in ``audit_path``/``leaf_hash`` are base64, leaf side first.
        """
        index = self.store.index_of(decision_id)
        if index is None:
            raise InputError(f"decision_id: no decision {decision_id}")
        size = self._size_arg(tree_size, "tree_size")
        if index >= size:
            raise InputError(f"tree_size: record {index} is not in a tree of size {size}")
        leaf, path, root = self._with_nodes(
            lambda read: (read(0, index), inclusion_proof(index, size, read), root_hash(size, read))
        )
        body = json.loads(self.store.get_body(index) or "{}")
        return {
            "decision_id": decision_id,
            "leaf_index": index,
            "tree_size": size,
            "record_hash": body.get("log", {}).get("record_hash"),
            "leaf_hash": _b64(leaf),
            "audit_path": [_b64(h) for h in path],
            "root_hash": "sha256:" + root.hex(),
        }

    def consistency_proof(self, first: int, second: int) -> dict[str, Any]:
        """RFC 9162 consistency proof between tree sizes ``first`` and ``second``."""
        second = self._size_arg(second, "second")
        if not 0 < first <= second:
            raise InputError("first: must be at least 1 and at most second")
        proof, r1, r2 = self._with_nodes(
            lambda read: (
                consistency_proof(first, second, read),
                root_hash(first, read),
                root_hash(second, read),
            )
        )
        return {
            "first": first,
            "second": second,
            "first_root_hash": "sha256:" + r1.hex(),
            "second_root_hash": "sha256:" + r2.hex(),
            "proof": [_b64(h) for h in proof],
        }

    def leaf(self, index: int) -> bytes:
        """The stored leaf hash at ``index`` (for tests and audits)."""
        got = self.store.read_nodes([(0, index)])
        return got[(0, index)]

    def export(self, out: TextIO) -> SignedCheckpoint:
        """JSON Lines: every record up to a fresh checkpoint, then that checkpoint."""
        cp = self.checkpoint()
        for _, body in self.store.scan(QueryFilter(), start=0, end=cp.size):
            out.write(body + "\n")
        out.write(json.dumps(cp.to_json(), ensure_ascii=False) + "\n")
        return cp


def _with_record(decision: Decision, record: dict[str, Any]) -> Decision:
    log, signature = log_and_signature(record)
    return decision.model_copy(update={"log": log, "signature": signature})


def open_decision_log(
    state_dir: Path,
    *,
    database_url: str | None = None,
    create_key: bool = True,
    origin: str = DEFAULT_ORIGIN,
    masks: Sequence[MaskRule] = (),
) -> DecisionLog:
    """The log of a state directory: ``<dir>/log.db`` (unless ``database_url``) and keys."""
    if create_key:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    signer, ring = load_signing_key(state_dir, create=create_key)
    url = database_url or f"sqlite:///{os.fspath(state_dir / LOG_DB_FILE)}"
    return DecisionLog(SqlRecordStore(url), signer, ring, origin=origin, masks=masks)
