"""The log record (``DecisionRecordV1``): what is hashed, what is signed, how.

A record is the contract's Decision with its ``log`` and ``signature`` filled, plus the
stored (masked) input document, the request metadata and the masked paths::

    {<Decision fields>, "input": {...}, "request": {"caller", "adapter", "dry_run"},
     "erased": [...], "masked": [...],
     "log": {"index", "prev_hash", "record_hash"}, "signature": {"alg", "key_id", "value"}}

* The *hash body* is the record without ``signature`` and without ``log.record_hash``; it
  does include ``log.index`` and ``log.prev_hash`` (the chain).
* ``record_hash = "sha256:" + hex(SHA-256(RFC 8785 canonical JSON of the hash body))``.
* ``prev_hash`` is the previous record's ``record_hash`` (64 zeros after ``sha256:`` for
  index 0).
* ``signature.value = base64(Ed25519(private key, the 32 raw bytes of record_hash))``, by
  the key ``signature.key_id`` (hex SHA-256 of the raw public key).
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import orjson

from engine.errors import InputError
from engine.jsonfast import deep_copy
from engine.log.canonical import (
    EMPTY_ARRAY,
    EMPTY_OBJECT,
    CanonicalCache,
    canonical_bytes,
    canonical_key,
    canonical_scalar,
    digest_ref,
    is_scalar,
    join_members,
)
from engine.log.signing import ALG, Signer
from engine.models.common import StrictModel
from engine.models.decision import Decision, LogInfo, SignatureInfo

TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


class RequestMeta(StrictModel):
    """Who asked, through which adapter, and whether it was a dry run."""

    caller: str | None = None
    adapter: str
    dry_run: bool = False


class DecisionRecordV1(Decision):
    """A logged decision: the Decision plus what it was decided on and who asked."""

    input: dict[str, Any]
    request: RequestMeta
    erased: list[str] = []
    masked: list[str] = []

    def decision(self) -> Decision:
        """The contract's Decision (response body) carried by this record."""
        fields = {name: getattr(self, name) for name in Decision.model_fields}
        return Decision(**fields)


def normalize_timestamp(value: str | datetime, *, what: str = "timestamp") -> str:
    """A UTC timestamp in the fixed ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` form (sortable text)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as exc:
            raise InputError(f"{what}: not an ISO 8601 timestamp: {value!r}") from exc
    if value.tzinfo is None:
        raise InputError(f"{what}: timestamp must carry a time zone")
    return value.astimezone(UTC).strftime(TS_FORMAT)


def hash_body(record: dict[str, Any]) -> dict[str, Any]:
    """The record minus ``signature`` and ``log.record_hash``: what ``record_hash`` covers."""
    body = {k: v for k, v in record.items() if k != "signature"}
    log = body.get("log")
    if isinstance(log, dict):
        body["log"] = {k: v for k, v in log.items() if k != "record_hash"}
    return body


def compute_record_hash(record: dict[str, Any]) -> bytes:
    """The 32 raw bytes of SHA-256 over the canonical hash body."""
    return hashlib.sha256(canonical_bytes(hash_body(record))).digest()


def draft_body(
    decision: Decision,
    *,
    input_document: dict[str, Any],
    request: RequestMeta,
    erased: list[str],
    masked: list[str],
    copy_input: bool = True,
) -> dict[str, Any]:
    """The record before it has a place in the log (no ``log``, no ``signature``).

    The input document is deep-copied unless ``copy_input`` is False (the caller passes a
    private copy already, e.g. the masked one).
    """
    body = decision.model_dump(mode="json", exclude={"log", "signature"})
    body.update(
        input=deep_copy(input_document) if copy_input else input_document,
        request=request.model_dump(mode="json"),
        erased=list(erased),
        masked=list(masked),
    )
    return body


def canonical_members(
    body: dict[str, Any],
    *,
    known: dict[str, bytes] | None = None,
    cache: CanonicalCache | None = None,
) -> dict[str, bytes]:
    """RFC 8785 encodings of each top-level member (``"key":value``) of ``body``.

    A canonical object is ``{`` + its members sorted by the UTF-16 code units of their
    keys, joined by ``,`` + ``}``; so the draft's members are encoded once, by the caller,
    and the writer only adds ``log`` (see :func:`join_members`). Raises
    :class:`InputError` for values JCS cannot encode. ``known`` holds RFC 8785 encodings
    of values the caller already made (by ``rfc8785``), keyed by member name. With a
    ``cache``, the objects and arrays that repeat from one record to the next (the policy,
    the engine, an artifact, the request's metadata, the usual reasons) are encoded once;
    the input document, which changes with every decision's clock, is not looked up.
    """
    known = known or {}

    def encode(key: str, value: Any) -> bytes:
        if key in known:
            return known[key]
        if not value and isinstance(value, list | dict):
            return EMPTY_ARRAY if isinstance(value, list) else EMPTY_OBJECT
        if cache is not None and value and key != "input" and isinstance(value, dict | list):
            return cache.encode(value)
        if is_scalar(value):
            return canonical_scalar(value)
        return canonical_bytes(value)

    return {k: canonical_key(k) + b":" + encode(k, v) for k, v in body.items()}


def seal(
    draft: dict[str, Any],
    index: int,
    prev_hash: str,
    signer: Signer,
    *,
    members: dict[str, bytes] | None = None,
) -> tuple[dict[str, Any], bytes]:
    """Place ``draft`` at ``index`` after ``prev_hash``, hash and sign it.

    Returns the full record and its raw record hash. ``members`` (from
    :func:`canonical_members` of ``draft``) saves re-encoding the draft.
    """
    if "log" in draft or "signature" in draft:
        raise InputError("a draft record must not carry 'log' or 'signature'")
    log: dict[str, Any] = {"index": index, "prev_hash": prev_hash}
    if members is None:
        members = canonical_members(draft)
    canonical = join_members(members | {"log": canonical_key("log") + b":" + canonical_bytes(log)})
    raw = hashlib.sha256(canonical).digest()
    record = dict(draft)
    record["log"] = dict(log, record_hash=digest_ref(raw))
    record["signature"] = {
        "alg": ALG,
        "key_id": signer.key_id,
        "value": base64.b64encode(signer.sign(raw)).decode("ascii"),
    }
    return record, raw


def record_text(record: dict[str, Any]) -> str:
    """The stored JSON text of a sealed record (compact, UTF-8, read back equal by ``json``).

    A sealed record was RFC 8785-encoded, so it holds no NaN or Infinity (which orjson
    would write as ``null``); orjson writes it, the standard library where orjson refuses
    a value (integers beyond 64 bits, lone surrogates). Not canonical: verification
    re-encodes the parsed record with ``rfc8785``.
    """
    try:
        return orjson.dumps(record).decode("utf-8")
    except (orjson.JSONEncodeError, RecursionError):
        return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def log_and_signature(record: dict[str, Any]) -> tuple[LogInfo, SignatureInfo]:
    """The ``log`` and ``signature`` members of a sealed record, as models."""
    return LogInfo(**record["log"]), SignatureInfo(**record["signature"])
