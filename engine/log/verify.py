"""Offline verification of an export (``releasegate log verify``).

Input: the JSON Lines export (records in index order, then the signed checkpoint), the
auditor's key ring and optionally an earlier checkpoint the auditor kept. The first
problem found is raised as :class:`ExportVerificationError` naming the record index
(``None`` when the problem is not one record's, e.g. a root mismatch).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from engine.errors import EngineError, LogError
from engine.log.canonical import ZERO_HASH, digest_bytes
from engine.log.checkpoint import SignedCheckpoint
from engine.log.merkle import (
    Frontier,
    NodeKey,
    ProofError,
    consistency_proof,
    leaf_hash,
    verify_consistency,
)
from engine.log.record import compute_record_hash
from engine.log.signing import KeyRing


@dataclass
class ExportVerificationError(LogError):
    """The export is not intact; ``index`` is the first bad record (None: not one record)."""

    index: int | None = None
    code: str = "log_verification_failed"


@dataclass(frozen=True)
class VerifyReport:
    """What an intact export proved."""

    size: int
    root_hash: str
    origin: str
    key_ids: tuple[str, ...]
    consistent_with: int | None


def _fail(index: int | None, what: str) -> ExportVerificationError:
    where = f"record {index}: " if index is not None else ""
    return ExportVerificationError(f"{where}{what}", index=index)


def _with_last(lines: Iterable[str]) -> Iterator[tuple[bool, str]]:
    pending: str | None = None
    for line in lines:
        if not line.strip():
            continue
        if pending is not None:
            yield False, pending
        pending = line
    if pending is not None:
        yield True, pending


def _check_record(raw: Any, position: int, prev: str, keyring: KeyRing) -> bytes:
    """Steps 2a-2e for one record; returns its raw record hash."""
    if not isinstance(raw, dict) or not isinstance(raw.get("log"), dict):
        raise _fail(position, "not a record (no 'log' object)")
    log, sig = raw["log"], raw.get("signature")
    # 2a. Indexes are contiguous from 0: a deleted, inserted or reordered row shows here.
    if log.get("index") != position:
        raise _fail(position, f"expected log.index {position}, found {log.get('index')!r}")
    # 2b. The chain: prev_hash is the previous record's hash.
    if log.get("prev_hash") != prev:
        raise _fail(position, f"prev_hash {log.get('prev_hash')!r} does not chain to {prev}")
    # 2c. The record hash, recomputed from the canonical body.
    try:
        claimed = digest_bytes(log.get("record_hash"), what="log.record_hash")
        actual = compute_record_hash(raw)
    except EngineError as exc:
        raise _fail(position, str(exc)) from exc
    if actual != claimed:
        raise _fail(position, "record_hash does not match the record's canonical JSON")
    # 2d. The signature's key must be one the auditor holds.
    if not isinstance(sig, dict) or not isinstance(sig.get("key_id"), str):
        raise _fail(position, "missing signature")
    if sig["key_id"] not in keyring:
        raise _fail(position, f"signed by unknown key {sig['key_id']}")
    # 2e. The Ed25519 signature over the 32 raw bytes of the record hash.
    try:
        value = base64.b64decode(str(sig.get("value")), validate=True)
        keyring.verify(sig["key_id"], claimed, value)
    except (binascii.Error, EngineError) as exc:
        raise _fail(position, f"signature does not verify ({exc})") from exc
    return claimed


def verify_export(
    lines: Iterable[str], keyring: KeyRing, *, since_checkpoint: SignedCheckpoint | None = None
) -> VerifyReport:
    """Verify an export offline; raises :class:`ExportVerificationError` at the first fault."""
    frontier = Frontier(0, [])
    nodes: dict[NodeKey, bytes] = {}
    prev = ZERO_HASH
    key_ids: set[str] = set()
    checkpoint: SignedCheckpoint | None = None
    position = 0
    for last, line in _with_last(lines):
        try:
            raw = json.loads(line)
        except ValueError as exc:
            raise _fail(None if last else position, f"line is not JSON ({exc})") from exc
        if last:
            # 1. The last line is the checkpoint; its signatures are checked first.
            try:
                checkpoint = SignedCheckpoint.from_json(raw)
                checkpoint.verify(keyring)
            except EngineError as exc:
                raise _fail(None, f"checkpoint: {exc}") from exc
            break
        # 2. Each record, in order.
        record_hash = _check_record(raw, position, prev, keyring)
        key_ids.add(raw["signature"]["key_id"])
        for level, index, h in frontier.append(leaf_hash(record_hash)):
            nodes[(level, index)] = h
        prev = "sha256:" + record_hash.hex()
        position += 1
    if checkpoint is None:
        raise _fail(None, "the export is empty: no checkpoint line")
    size = position
    # 3. The checkpoint covers exactly the records: fewer = tail cut, more = stale head.
    if size < checkpoint.size:
        raise _fail(
            size,
            f"missing: the checkpoint covers {checkpoint.size} records, "
            f"the export holds {size} (tail truncated)",
        )
    if size > checkpoint.size:
        raise _fail(
            checkpoint.size,
            f"not covered by the signed checkpoint (size "
            f"{checkpoint.size}): the checkpoint is older than the records",
        )
    # 4. The Merkle root recomputed from the record hashes equals the signed root.
    if frontier.root() != checkpoint.root:
        raise _fail(None, "the Merkle root of the records does not match the signed checkpoint")
    consistent_with = None
    if since_checkpoint is not None:
        _check_since(since_checkpoint, checkpoint, nodes, keyring)
        consistent_with = since_checkpoint.size
    return VerifyReport(
        size=size,
        root_hash="sha256:" + checkpoint.root.hex(),
        origin=checkpoint.origin,
        key_ids=tuple(sorted(key_ids)),
        consistent_with=consistent_with,
    )


def _check_since(
    kept: SignedCheckpoint,
    current: SignedCheckpoint,
    nodes: dict[NodeKey, bytes],
    keyring: KeyRing,
) -> None:
    """Step 5: the current tree is an append-only extension of the kept checkpoint."""
    # 5a. The kept checkpoint is itself authentic and about the same log.
    try:
        kept.verify(keyring)
    except EngineError as exc:
        raise _fail(None, f"kept checkpoint: {exc}") from exc
    if kept.origin != current.origin:
        raise _fail(None, f"kept checkpoint is for log {kept.origin!r}, not {current.origin!r}")
    # 5b. The log must not have shrunk (truncation or rollback).
    if kept.size > current.size:
        raise _fail(
            current.size,
            f"missing: the log has {current.size} records but a "
            f"kept checkpoint covers {kept.size} (truncated or rolled back)",
        )
    if kept.size == 0:
        return

    # 5c. An RFC 9162 consistency proof computed from the records must verify between
    #     the kept root and the signed root; a fork or rewrite of the prefix fails here.
    proof = consistency_proof(kept.size, current.size, lambda lv, ix: nodes[(lv, ix)])
    try:
        verify_consistency(kept.size, current.size, kept.root, current.root, proof)
    except ProofError as exc:
        raise _fail(
            None,
            f"not consistent with the kept checkpoint of size {kept.size}: "
            f"{exc} (the log was forked or rewritten)",
        ) from exc
