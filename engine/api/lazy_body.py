"""A decision request read lazily: the evidence documents stay the text they arrived as.

``POST /v1/decisions`` carries the same attestation bundles and scanner reports with every
pipeline run, and on a warm request they are only named by a digest (the verification
cache, the scan memo). Parsing them into Python objects was about a tenth of the service's
CPU per decision (docs/benchmarks.md, round 12). :func:`read_decision_request` reads the
body with ``msgspec`` against the request's outline: every byte is checked as JSON, the
release, the artifact, ``dry_run`` and each scan's ``format`` are parsed (by
:func:`engine.jsonfast.loads`, as the eager reader parses the whole body) and validated by
the same model, and each attestation and report becomes a
:class:`engine.models.raw.RawObject`: its bytes, hashed for the caches and parsed only when
one misses.

It is an accelerator, never a second reading of the contract: it returns None for
anything off the common path (text the strict reader refuses, NaN or Infinity, a field the
outline does not name, a value of another type, a document that is not an object, any
validation error), and the route then reads the body eagerly, as FastAPI would, with the
same errors as ever. A raw object whose text cannot be parsed after all (bad UTF-8 inside
a string, nesting beyond the parser's depth) raises
:class:`engine.models.raw.UnreadableEvidence` while the facts are gathered, before anything
is evaluated or recorded, and the route reads that body eagerly too. Nothing refuses a
request between its validation and the reading of its documents (the verifier's limit on
attestations is the model's, 64), so a body wrong in two ways is refused for the reason
the eager reader gives.
"""

from __future__ import annotations

from typing import Any

import msgspec
from pydantic import ValidationError

from engine import jsonfast
from engine.models.raw import RawObject
from engine.models.request import DecisionRequestV1


class _Scan(msgspec.Struct, forbid_unknown_fields=True):
    report: msgspec.Raw
    format: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


class _Evidence(msgspec.Struct, forbid_unknown_fields=True):
    attestations: list[msgspec.Raw] = []
    scans: list[_Scan] = []


class _Outline(msgspec.Struct, forbid_unknown_fields=True):
    """Contract §3's request, with every value left as its text."""

    release: msgspec.Raw
    artifact: msgspec.Raw
    evidence: _Evidence | msgspec.UnsetType = msgspec.UNSET
    dry_run: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


_DECODER = msgspec.json.Decoder(_Outline)
_OBJECT = ord("{")


class _OffPath(Exception):
    """The body is not for the lazy reader."""


def read_decision_request(body: bytes) -> DecisionRequestV1 | None:
    """The request with raw evidence documents, or None: read the body eagerly instead."""
    document = outline_document(body)
    if document is None:
        return None
    try:
        return DecisionRequestV1.model_validate(document)
    except ValidationError:
        return None


def outline_document(body: bytes) -> dict[str, Any] | None:
    """The body as the dict the model validates, its evidence documents raw objects; None
    when the body is off the common path (before validation: see the module's note)."""
    try:
        outline = _DECODER.decode(body)
    except (msgspec.DecodeError, RecursionError):  # msgspec.ValidationError included
        return None
    try:
        document: dict[str, Any] = {
            "release": _value(outline.release),
            "artifact": _value(outline.artifact),
        }
        if not isinstance(outline.dry_run, msgspec.UnsetType):
            document["dry_run"] = _value(outline.dry_run)
        evidence = outline.evidence
        if not isinstance(evidence, msgspec.UnsetType):
            document["evidence"] = {
                "attestations": [_raw_object(a) for a in evidence.attestations],
                "scans": [_scan(s) for s in evidence.scans],
            }
    except _OffPath:
        return None
    return document


def _value(raw: msgspec.Raw) -> Any:
    try:
        return jsonfast.loads(bytes(raw))
    except (ValueError, RecursionError) as exc:
        raise _OffPath from exc


def _raw_object(raw: msgspec.Raw) -> RawObject:
    text = bytes(raw)
    if text[0] != _OBJECT:  # msgspec's raw value starts at its first byte
        raise _OffPath
    return RawObject(text)


def _scan(scan: _Scan) -> dict[str, Any]:
    if isinstance(scan.format, msgspec.UnsetType):
        return {"report": _raw_object(scan.report)}
    return {"format": _value(scan.format), "report": _raw_object(scan.report)}


__all__ = ["outline_document", "read_decision_request"]
