"""Attestations -> the ``provenance`` section: offline Sigstore / DSSE / SLSA verification.

Public entry points: :class:`ProvenanceVerifier` (pinned trust root, optional keys, result
cache), :func:`build_provenance_section` and :func:`load_attestation_file`. Every
attestation becomes one ``AttestationFact``; ``verified`` means the cryptography checked
out (see ``verifier.py`` for exactly what that covers); identity and builder trust are
decided in Rego.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.errors import FieldError, InputError
from engine.inputs.provenance.cache import CacheStats, VerificationCache
from engine.inputs.provenance.common import Limits, json_depth
from engine.inputs.provenance.dsse_keys import TrustedKey, load_public_key
from engine.inputs.provenance.verifier import ProvenanceVerifier
from engine.models.common import SectionStatus
from engine.models.provenance import ProvenanceSection
from engine.models.raw import EvidenceDocument

__all__ = [
    "CacheStats",
    "Limits",
    "ProvenanceVerifier",
    "TrustedKey",
    "VerificationCache",
    "build_provenance_section",
    "load_attestation_file",
    "load_public_key",
]

_SHA256 = re.compile(r"^sha256:[0-9a-f]{64}$")
_JSON_LINES_SUFFIXES = (".jsonl", ".build.slsa", ".intoto.jsonl", ".sigstore.jsonl")
_NO_ATTESTATIONS = ProvenanceSection(
    status=SectionStatus.MISSING, message="no attestations supplied"
)
"""Frozen: one object for every request without attestations (encoded once, by identity)."""
MAX_FILE_BYTES = 16 * 1024 * 1024
"""Cap on an attestation file (JSON or JSON Lines); each bundle is capped separately."""


def build_provenance_section(
    attestations: Sequence[EvidenceDocument],
    *,
    artifact_digest: str,
    verifier: ProvenanceVerifier,
) -> ProvenanceSection:
    """Verify each attestation for ``artifact_digest`` into the ``provenance`` section.

    No attestations gives ``status="missing"``; otherwise ``status="ok"`` with one fact
    per attestation in order, failed ones included. Raises ``InputError`` for a malformed
    artifact digest or more attestations than ``verifier.limits.max_attestations``.
    """
    if not _SHA256.match(artifact_digest):
        raise InputError(
            "artifact digest must be sha256:<64 lowercase hex>",
            errors=(FieldError("artifact.digest", f"got {artifact_digest[:80]!r}"),),
        )
    if not attestations:
        return _NO_ATTESTATIONS
    limit = verifier.limits.max_attestations
    if len(attestations) > limit:
        raise InputError(
            f"too many attestations: {len(attestations)} > {limit}",
            errors=(FieldError("evidence.attestations", f"at most {limit} allowed"),),
        )
    return verifier.section(attestations, artifact_digest=artifact_digest)


def load_attestation_file(
    path: Path | str, *, max_bytes: int = MAX_FILE_BYTES, limits: Limits | None = None
) -> list[dict[str, Any]]:
    """Read one JSON document (an object or an array of objects) or JSON Lines.

    ``.jsonl`` / ``.intoto.jsonl`` / ``.build.slsa`` files hold one bundle per line; other
    files are tried as one JSON document first. Raises ``InputError`` naming the file
    (and line) for unreadable, oversized, too deeply nested or non-object content.
    """
    limits = limits or Limits()
    path = Path(path)
    where = str(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise InputError(f"{where}: {size} bytes exceeds the {max_bytes}-byte limit")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{where}: cannot read attestation file: {exc}") from exc
    if not text.strip():
        raise InputError(f"{where}: attestation file is empty")
    if not path.name.endswith(_JSON_LINES_SUFFIXES):
        try:
            return _objects(json.loads(text), where=where, limits=limits)
        except RecursionError as exc:
            raise InputError(f"{where}: JSON nested too deeply") from exc
        except ValueError as exc:
            if text.lstrip().startswith("[") or "\n" not in text.strip():
                raise InputError(f"{where}: not valid JSON: {exc}") from exc
    bundles: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except (ValueError, RecursionError) as exc:
            raise InputError(f"{where}:{number}: not valid JSON: {exc}") from exc
        bundles.extend(_objects(value, where=f"{where}:{number}", limits=limits))
    return bundles


def _objects(value: Any, *, where: str, limits: Limits) -> list[dict[str, Any]]:
    items = value if isinstance(value, list) else [value]
    if json_depth(items) > limits.max_depth + 1:
        raise InputError(f"{where}: JSON nested deeper than {limits.max_depth} levels")
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise InputError(f"{where}: item {i} is {type(item).__name__}, expected an object")
    return list(items)
