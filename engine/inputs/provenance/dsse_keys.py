"""Key-based DSSE: bare envelopes signed with a configured public key (cosign ``--key``).

Signatures are over ``PAE(payloadType, payload)`` (DSSE v1). Supported keys: ECDSA
P-256 / P-384 (SHA-256 / SHA-384; DER or raw ``r||s`` signatures), Ed25519, and RSA
(PSS with any salt length, or PKCS#1 v1.5; SHA-256). An envelope verifies if at least
one of its signatures verifies under one configured key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from engine.errors import ConfigError
from engine.inputs.provenance.common import Rejected, b64decode_strict
from engine.inputs.provenance.common import field as get

PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey


@dataclass(frozen=True)
class TrustedKey:
    """A configured verification key: its name (the fact's ``key_id``) and fingerprint."""

    name: str
    key: PublicKey
    fingerprint: str
    """``sha256:<hex>`` of the DER SubjectPublicKeyInfo."""


@dataclass(frozen=True)
class Envelope:
    """A decoded DSSE envelope."""

    payload_type: str
    payload: bytes
    signatures: tuple[tuple[str | None, bytes], ...]
    """``(keyid, signature bytes)`` pairs."""


def load_public_key(path: Path, *, name: str = "") -> TrustedKey:
    """Load a PEM or DER public key; ``name`` defaults to the key's fingerprint."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"public key {path}: {exc.strerror or exc}") from exc
    return public_key_from_bytes(data, name=name, source=str(path))


def public_key_from_bytes(data: bytes, *, name: str = "", source: str = "key") -> TrustedKey:
    """Build a :class:`TrustedKey` from PEM or DER bytes."""
    try:
        if b"-----BEGIN" in data:
            key = serialization.load_pem_public_key(data)
        else:
            key = serialization.load_der_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ConfigError(f"public key {source}: not a PEM/DER public key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey):
        raise ConfigError(f"public key {source}: unsupported key type {type(key).__name__}")
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    fingerprint = "sha256:" + hashlib.sha256(der).hexdigest()
    return TrustedKey(name=name or fingerprint, key=key, fingerprint=fingerprint)


def parse_envelope(doc: Mapping[str, Any], *, where: str = "envelope") -> Envelope:
    """Decode a DSSE envelope; wrong types or bad base64 are ``invalid`` (named by ``where``)."""
    payload_type = get(doc, "payloadType", str, where=where, required=True)
    raw_payload = get(doc, "payload", str, where=where, required=True)
    payload = b64decode_strict(raw_payload, what=f"{where}.payload")
    raw_sigs = get(doc, "signatures", list, where=where, required=True)
    if not raw_sigs:
        raise Rejected("invalid", f"{where}.signatures: must not be empty")
    signatures: list[tuple[str | None, bytes]] = []
    for i, entry in enumerate(raw_sigs):
        s_where = f"{where}.signatures[{i}]"
        if not isinstance(entry, dict):
            raise Rejected("invalid", f"{s_where}: expected an object")
        keyid = get(entry, "keyid", str, where=s_where, required=False)
        raw_sig = get(entry, "sig", str, where=s_where, required=True)
        sig = b64decode_strict(raw_sig, what=f"{s_where}.sig")
        if not sig:
            raise Rejected("invalid", f"{s_where}.sig: empty signature")
        signatures.append((keyid or None, sig))
    return Envelope(payload_type=payload_type, payload=payload, signatures=tuple(signatures))


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 Pre-Authentication Encoding."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


def find_signing_key(envelope: Envelope, keys: Sequence[TrustedKey]) -> TrustedKey:
    """Return the key that verifies a signature of ``envelope``, or raise ``Rejected``."""
    if not keys:
        raise Rejected("unsupported", "key-signed DSSE envelope, but no public keys are configured")
    message = pae(envelope.payload_type, envelope.payload)
    for _keyid, signature in envelope.signatures:
        for trusted in keys:
            if _verifies(trusted.key, signature, message):
                return trusted
    raise Rejected("failed", "DSSE: no configured public key verifies the envelope signature")


def _verifies(key: PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, message)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            _verify_ecdsa(key, signature, message)
        else:
            _verify_rsa(key, signature, message)
    except InvalidSignature:
        return False
    return True


def _verify_ecdsa(key: ec.EllipticCurvePublicKey, signature: bytes, message: bytes) -> None:
    digest: hashes.HashAlgorithm = hashes.SHA384() if key.curve.key_size > 256 else hashes.SHA256()
    size = (key.curve.key_size + 7) // 8
    candidates = [signature]
    if len(signature) == 2 * size:
        # NOTE: raw IEEE P1363 r||s (as in the corpus VSA) is re-encoded to DER.
        r = int.from_bytes(signature[:size], "big")
        s = int.from_bytes(signature[size:], "big")
        candidates.append(encode_dss_signature(r, s))
    for candidate in candidates:
        try:
            key.verify(candidate, message, ec.ECDSA(digest))
            return
        except (InvalidSignature, ValueError):
            continue
    raise InvalidSignature


def _verify_rsa(key: rsa.RSAPublicKey, signature: bytes, message: bytes) -> None:
    schemes: list[padding.AsymmetricPadding] = [
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO),
        padding.PKCS1v15(),
    ]
    for scheme in schemes:
        try:
            key.verify(signature, message, scheme, hashes.SHA256())
            return
        except (InvalidSignature, ValueError):
            continue
    raise InvalidSignature
