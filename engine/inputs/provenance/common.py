"""Limits, the internal rejection signal, and bounded JSON helpers for attestations."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import rfc8785

from engine.log.canonical import jcs_dumps
from engine.models.provenance import VerificationOutcome

MAX_BUNDLE_BYTES = 256 * 1024
"""Default cap on one bundle / envelope, measured on its RFC 8785 canonical form."""

MAX_ATTESTATIONS = 64
"""Default cap on attestations per request (matches ``Evidence.attestations``)."""

MAX_JSON_DEPTH = 32
"""Default cap on JSON nesting (real bundles and in-toto statements stay under 12)."""


@dataclass(frozen=True)
class Limits:
    """Configurable bounds on attestation input; exceeding one is never a crash."""

    max_bundle_bytes: int = MAX_BUNDLE_BYTES
    max_attestations: int = MAX_ATTESTATIONS
    max_depth: int = MAX_JSON_DEPTH


class Rejected(Exception):
    """An attestation that cannot become a ``verified`` fact.

    Internal to the provenance package: raised by a verification step and turned into an
    ``AttestationFact`` with ``verification=outcome`` and ``error=message`` by the verifier.
    """

    def __init__(self, outcome: VerificationOutcome, message: str) -> None:
        super().__init__(message)
        self.outcome: VerificationOutcome = outcome
        self.message = message


def json_depth(value: object) -> int:
    """The nesting depth of a decoded JSON value (scalars are 0), computed iteratively."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(node, Mapping):
            stack.extend((child, depth + 1) for child in node.values())
        elif isinstance(node, list | tuple):
            stack.extend((child, depth + 1) for child in node)
    return deepest


def check_depth(value: object, *, limits: Limits, what: str) -> None:
    """Reject ``value`` as ``invalid`` if it nests deeper than ``limits.max_depth``."""
    if json_depth(value) > limits.max_depth:
        raise Rejected("invalid", f"{what}: JSON nested deeper than {limits.max_depth} levels")


def canonical_bytes(value: Mapping[str, Any], *, what: str) -> bytes:
    """RFC 8785 canonical JSON of ``value``; a value JSON cannot carry is ``invalid``."""
    try:
        return jcs_dumps(value)
    except (rfc8785.CanonicalizationError, RecursionError) as exc:
        raise Rejected("invalid", f"{what}: not canonicalizable JSON: {exc}") from exc


def sha256_prefixed(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def loads_bounded(data: bytes, *, limits: Limits, what: str) -> Any:
    """Decode JSON ``data`` within the size and depth limits, or raise ``Rejected``."""
    if len(data) > limits.max_bundle_bytes:
        raise Rejected("invalid", f"{what}: {len(data)} bytes exceeds {limits.max_bundle_bytes}")
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise Rejected("invalid", f"{what}: not valid JSON: {exc}") from exc
    check_depth(value, limits=limits, what=what)
    return value


def b64decode_strict(text: object, *, what: str) -> bytes:
    """Decode standard or URL-safe base64 (padding optional); bad input is ``invalid``."""
    if not isinstance(text, str):
        raise Rejected("invalid", f"{what}: expected a base64 string, got {type(text).__name__}")
    padded = text + "=" * (-len(text) % 4)
    alphabet = b"-_" if ("-" in text or "_" in text) else None
    try:
        return base64.b64decode(padded, altchars=alphabet, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Rejected("invalid", f"{what}: invalid base64: {exc}") from exc


def field(obj: Mapping[str, Any], key: str, kind: type, *, where: str, required: bool) -> Any:
    """Return ``obj[key]`` checked against ``kind``; a wrong type is ``invalid``.

    A missing key yields ``None`` unless ``required``.
    """
    if key not in obj or obj[key] is None:
        if required:
            raise Rejected("invalid", f"{where}.{key}: required field is missing")
        return None
    value = obj[key]
    if kind is int and isinstance(value, bool):
        raise Rejected("invalid", f"{where}.{key}: expected int, got bool")
    if not isinstance(value, kind):
        raise Rejected(
            "invalid", f"{where}.{key}: expected {_kind_name(kind)}, got {type(value).__name__}"
        )
    return value


_KIND_NAMES: dict[type, str] = {dict: "an object", list: "an array", str: "a string"}


def _kind_name(kind: type) -> str:
    return _KIND_NAMES.get(kind, kind.__name__)
