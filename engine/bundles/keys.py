"""Bundle signing keys: load, generate and name the JWS algorithm each key implies.

The algorithm is derived from the key, never read from the token, so a token cannot pick a
weaker algorithm than the key it is checked with (the classic JWT ``alg`` confusion):

=================  =======  =========================================
key                alg      OPA flag / config
=================  =======  =========================================
EC P-256           ES256    ``--signing-alg ES256`` (the default here)
Ed25519            EdDSA    ``--signing-alg EdDSA`` (CLI flags only, see below)
EC P-384           ES384    ``--signing-alg ES384``
RSA >= 2048 bits   RS256    ``--signing-alg RS256`` (OPA's default)
=================  =======  =========================================

NOTE: OPA 1.22 accepts EdDSA from ``opa run --signing-alg EdDSA`` but its config file's
``keys.<id>.algorithm`` refuses it ("unsupported algorithm 'EdDSA'"), so an OPA fleet
pulling bundles over HTTP cannot use Ed25519 keys. ES256 works everywhere: the default.

All four produce deterministic signatures here (ECDSA uses RFC 6979 nonces), so a rebuild
of unchanged policies is byte-identical.
"""

from __future__ import annotations

import enum
import os
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from engine.errors import BundleError, InputError

__all__ = [
    "PrivateKey",
    "PublicKey",
    "SigningAlg",
    "algorithm_for_key",
    "generate_signing_key",
    "load_signing_key",
    "load_verification_key",
    "public_key_pem",
]

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

_MIN_RSA_BITS = 2048


class SigningAlg(enum.StrEnum):
    """JWS algorithms releasegate signs and verifies bundles with (all supported by OPA)."""

    EDDSA = "EdDSA"
    ES256 = "ES256"
    ES384 = "ES384"
    RS256 = "RS256"


def algorithm_for_key(key: PrivateKey | PublicKey) -> SigningAlg:
    """The JWS algorithm a key implies; raises ``BundleError`` for unsupported keys."""
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return SigningAlg.EDDSA
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        if key.key_size < _MIN_RSA_BITS:
            raise BundleError(f"RSA key of {key.key_size} bits is too small (< {_MIN_RSA_BITS})")
        return SigningAlg.RS256
    if isinstance(key.curve, ec.SECP256R1):
        return SigningAlg.ES256
    if isinstance(key.curve, ec.SECP384R1):
        return SigningAlg.ES384
    raise BundleError(f"unsupported EC curve {key.curve.name} (use P-256, P-384 or Ed25519)")


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc


def load_signing_key(path: Path) -> PrivateKey:
    """Load an unencrypted PEM private key (PKCS#8, PKCS#1 or SEC1) usable for bundles."""
    raw = _read(path, "signing key")
    try:
        key = serialization.load_pem_private_key(raw, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise InputError(f"{path}: not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise InputError(f"{path}: unsupported key type {type(key).__name__}")
    algorithm_for_key(key)
    return key


def load_verification_key(path: Path) -> PublicKey:
    """Load a PEM public key (``PUBLIC KEY``, ``RSA PUBLIC KEY``) or a certificate's key."""
    raw = _read(path, "public key")
    try:
        if b"-----BEGIN CERTIFICATE-----" in raw:
            key: object = x509.load_pem_x509_certificate(raw).public_key()
        else:
            key = serialization.load_pem_public_key(raw)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise InputError(f"{path}: not a PEM public key or certificate: {exc}") from exc
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
        raise InputError(f"{path}: unsupported key type {type(key).__name__}")
    algorithm_for_key(key)
    return key


def public_key_pem(key: PrivateKey | PublicKey) -> bytes:
    """SubjectPublicKeyInfo PEM of ``key`` (the format OPA's ``--verification-key`` reads)."""
    public = key.public_key() if not isinstance(key, PublicKey) else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def generate_signing_key(
    private_out: Path,
    public_out: Path,
    *,
    alg: SigningAlg = SigningAlg.ES256,
    overwrite: bool = False,
) -> PrivateKey:
    """Create a key pair: PKCS#8 private key (mode 0600) and SPKI public key, both PEM."""
    if private_out.exists() and not overwrite:
        raise InputError(f"{private_out} exists; refusing to overwrite a signing key")
    key: PrivateKey
    if alg is SigningAlg.EDDSA:
        key = ed25519.Ed25519PrivateKey.generate()
    elif alg is SigningAlg.ES256:
        key = ec.generate_private_key(ec.SECP256R1())
    elif alg is SigningAlg.ES384:
        key = ec.generate_private_key(ec.SECP384R1())
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    private_out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(private_out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    public_out.parent.mkdir(parents=True, exist_ok=True)
    public_out.write_bytes(public_key_pem(key))
    return key
