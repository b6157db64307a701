"""In-toto Statements (v0.1 and v1), parsed by us from a verified DSSE payload.

``sigstore.dsse.Statement`` accepts only Statement v1, while real SLSA v0.2 provenance
(slsa-github-generator) is Statement v0.1, so the statement is parsed here, strictly:
every field has the type the in-toto spec gives it, or the attestation is ``invalid``.
Digest values of other algorithms (e.g. ``gce_image_id``) are kept out of the facts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.inputs.provenance.common import Limits, Rejected, loads_bounded
from engine.inputs.provenance.common import field as get

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPES = frozenset(
    {"https://in-toto.io/Statement/v0.1", "https://in-toto.io/Statement/v1"}
)
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_SHA256_HEX_LEN = 64


@dataclass(frozen=True)
class Statement:
    """The parts of an in-toto Statement the facts need."""

    statement_type: str
    predicate_type: str
    subject_sha256: tuple[str, ...]
    """Subject digests as ``sha256:<lowercase hex>``, in subject order, de-duplicated."""
    predicate: Mapping[str, Any] = field(default_factory=dict)


def parse_statement(payload_type: str, payload: bytes, *, limits: Limits) -> Statement:
    """Parse a DSSE payload as an in-toto Statement.

    Raises ``Rejected("unsupported")`` for another payload or statement type and
    ``Rejected("invalid")`` for a statement that is not what it claims to be.
    """
    # 1. Only in-toto payloads are understood.
    if payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise Rejected("unsupported", f"DSSE payloadType {payload_type!r} is not in-toto")
    # 2. Bounded JSON decode; the statement must be an object of a known version.
    doc = loads_bounded(payload, limits=limits, what="in-toto statement")
    if not isinstance(doc, dict):
        raise Rejected("invalid", "in-toto statement: expected a JSON object")
    statement_type = get(doc, "_type", str, where="statement", required=True)
    if statement_type not in STATEMENT_TYPES:
        raise Rejected("unsupported", f"in-toto statement type {statement_type!r}")
    predicate_type = get(doc, "predicateType", str, where="statement", required=True)
    predicate = get(doc, "predicate", dict, where="statement", required=False) or {}
    # 3. Subjects: a non-empty list, each with a digest map of hex strings.
    subjects = get(doc, "subject", list, where="statement", required=True)
    if not subjects:
        raise Rejected("invalid", "statement.subject: must not be empty")
    digests: list[str] = []
    for i, subject in enumerate(subjects):
        where = f"statement.subject[{i}]"
        if not isinstance(subject, dict):
            raise Rejected("invalid", f"{where}: expected an object")
        get(subject, "name", str, where=where, required=False)
        digest_map = get(subject, "digest", dict, where=where, required=True)
        for alg, value in digest_map.items():
            if not isinstance(value, str):
                raise Rejected("invalid", f"{where}.digest.{alg}: expected a string")
        sha = digest_map.get("sha256")
        if sha is None:
            continue
        if len(sha) != _SHA256_HEX_LEN or not _HEX.match(sha):
            raise Rejected("invalid", f"{where}.digest.sha256: expected 64 hex characters")
        normalized = "sha256:" + sha.lower()
        if normalized not in digests:
            digests.append(normalized)
    return Statement(
        statement_type=statement_type,
        predicate_type=predicate_type,
        subject_sha256=tuple(digests),
        predicate=predicate,
    )
