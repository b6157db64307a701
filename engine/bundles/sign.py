"""JWS compact serialization (RFC 7515) for the one token in a bundle's ``.signatures.json``.

Only what OPA's bundle signing needs: a protected header ``{"alg", "kid", "typ": "JWT"}``,
a JSON payload, and one signature made with an asymmetric key. No ``none``, no HMAC.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from engine.bundles.keys import PrivateKey, PublicKey, SigningAlg, algorithm_for_key
from engine.errors import BundleError

__all__ = ["b64url_decode", "b64url_encode", "sign_jws", "verify_jws"]

_EC_SIZES = {SigningAlg.ES256: (32, hashes.SHA256), SigningAlg.ES384: (48, hashes.SHA384)}


def b64url_encode(raw: bytes) -> str:
    """Unpadded base64url, as JWS requires."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64url_decode(text: str, *, what: str) -> bytes:
    """Decode unpadded base64url strictly; raises ``BundleError`` naming ``what``."""
    if "=" in text or not text.isascii():
        raise BundleError(f"{what}: not unpadded base64url")
    try:
        return base64.b64decode(
            text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4), validate=True
        )
    except (binascii.Error, ValueError) as exc:
        raise BundleError(f"{what}: not base64url: {exc}") from exc


def _compact_json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign_jws(payload: dict[str, Any], *, key: PrivateKey, key_id: str) -> str:
    """Sign ``payload`` (a JSON object) with ``key``; returns the JWS compact string."""
    alg = algorithm_for_key(key)
    header = {"alg": alg.value, "kid": key_id, "typ": "JWT"}
    encoded = (b64url_encode(_compact_json(header)), b64url_encode(_compact_json(payload)))
    signing_input = ".".join(encoded)
    data = signing_input.encode("ascii")
    if isinstance(key, ed25519.Ed25519PrivateKey):
        signature = key.sign(data)
    elif isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    else:
        size, hash_cls = _EC_SIZES[alg]
        # NOTE: RFC 6979 deterministic nonces keep rebuilds of unchanged policy byte-identical.
        der = key.sign(data, ec.ECDSA(hash_cls(), deterministic_signing=True))
        r, s = decode_dss_signature(der)
        signature = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    return f"{signing_input}.{b64url_encode(signature)}"


def _check_signature(key: PublicKey, alg: SigningAlg, data: bytes, signature: bytes) -> None:
    if isinstance(key, ed25519.Ed25519PublicKey):
        key.verify(signature, data)
    elif isinstance(key, rsa.RSAPublicKey):
        key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    else:
        size, hash_cls = _EC_SIZES[alg]
        if len(signature) != 2 * size:
            raise InvalidSignature
        r = int.from_bytes(signature[:size], "big")
        s = int.from_bytes(signature[size:], "big")
        key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hash_cls()))


def verify_jws(token: str, *, key: PublicKey) -> tuple[dict[str, Any], bytes]:
    """Verify a JWS compact token with ``key``; returns (protected header, payload bytes).

    Raises ``BundleError`` when the token is malformed, its ``alg`` is not the one the key
    implies, or the signature does not verify.
    """
    # 1. Three base64url parts.
    parts = token.split(".")
    if len(parts) != 3:
        raise BundleError(".signatures.json: token is not a JWS compact serialization")
    header_b64, payload_b64, signature_b64 = parts
    # 2. The header is a JSON object whose alg is the algorithm of the verification key.
    try:
        header = json.loads(b64url_decode(header_b64, what="JWS header"))
    except ValueError as exc:
        raise BundleError(f".signatures.json: JWS header is not JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise BundleError(".signatures.json: JWS header is not a JSON object")
    expected = algorithm_for_key(key)
    if header.get("alg") != expected.value:
        raise BundleError(
            f".signatures.json: token alg {header.get('alg')!r} does not match the "
            f"verification key ({expected.value})"
        )
    if "crit" in header:
        raise BundleError(".signatures.json: JWS 'crit' header is not supported")
    # 3. The signature verifies over the ASCII signing input.
    payload = b64url_decode(payload_b64, what="JWS payload")
    signature = b64url_decode(signature_b64, what="JWS signature")
    try:
        _check_signature(key, expected, f"{header_b64}.{payload_b64}".encode("ascii"), signature)
    except InvalidSignature as exc:
        raise BundleError(
            ".signatures.json: signature does not verify with the given public key"
        ) from exc
    return header, payload
