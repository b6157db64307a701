"""RFC 8785 canonical JSON and the SHA-256 digest strings used throughout the log.

Digests are written ``sha256:<64 lowercase hex>`` on the wire (records, checkpoints' JSON
form); the raw 32 bytes are what the Merkle tree and the signatures consume.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import rfc8785

from engine.errors import InputError, map_errors

ZERO_HASH = "sha256:" + "0" * 64
"""The ``prev_hash`` of the record at index 0 (there is no previous record)."""

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def canonical_bytes(value: Any) -> bytes:
    """Serialize ``value`` as RFC 8785 (JCS) canonical JSON bytes.

    Raises :class:`InputError` for values JSON cannot represent canonically (NaN,
    infinities, integers beyond IEEE 754 double precision, non-string keys).
    """
    with map_errors(InputError, "value cannot be canonicalized (RFC 8785)"):
        return rfc8785.dumps(value)


def sha256_ref(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def digest_bytes(ref: str, *, what: str = "digest") -> bytes:
    """The 32 raw bytes of a ``sha256:<hex>`` string; :class:`InputError` if malformed."""
    if not isinstance(ref, str) or not _DIGEST.match(ref):
        raise InputError(f"{what} must be 'sha256:' followed by 64 lowercase hex characters")
    return bytes.fromhex(ref[len("sha256:") :])


def digest_ref(raw: bytes) -> str:
    """The ``sha256:<hex>`` form of 32 raw digest bytes."""
    return "sha256:" + raw.hex()
