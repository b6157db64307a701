"""Ed25519 signing keys, key ids and the public key ring.

Key id (documented, stable): the lowercase hex SHA-256 of the 32-byte raw Ed25519 public
key, i.e. ``sha256(public_key.public_bytes(Raw, Raw)).hexdigest()``.

The key ring is what ``GET /v1/keys`` serves and what an auditor passes to
``releasegate log verify --keys``::

    {"keys": [{"key_id": "<hex>", "alg": "Ed25519",
               "public_key_pem": "-----BEGIN PUBLIC KEY-----...", "created": "<RFC 3339>"}]}

Rotation adds a key to the ring and never removes one, so records signed by a retired key
stay verifiable.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from engine.errors import InputError, SignatureError, map_errors

ALG = "Ed25519"


def raw_public_bytes(key: Ed25519PublicKey) -> bytes:
    """The 32-byte raw encoding of an Ed25519 public key."""
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id_for(key: Ed25519PublicKey) -> str:
    """Hex SHA-256 of the raw public key bytes: the key id used in records and the ring."""
    return hashlib.sha256(raw_public_bytes(key)).hexdigest()


def public_key_pem(key: Ed25519PublicKey) -> str:
    """SubjectPublicKeyInfo PEM of a public key."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


class Signer(Protocol):
    """Something that signs bytes with an Ed25519 key it identifies by key id."""

    @property
    def key_id(self) -> str:
        """Hex SHA-256 of the raw public key."""

    @property
    def public_key(self) -> Ed25519PublicKey:
        """The verifying key."""

    def sign(self, data: bytes) -> bytes:
        """A 64-byte Ed25519 signature over ``data``."""


class Ed25519Signer:
    """A :class:`Signer` holding an in-memory Ed25519 private key."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private = private_key
        self._public = private_key.public_key()
        self._key_id = key_id_for(self._public)

    @classmethod
    def generate(cls) -> Ed25519Signer:
        """A signer with a fresh random key."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_pem(cls, pem: bytes) -> Ed25519Signer:
        """Load a PKCS#8 PEM private key; :class:`InputError` unless it is Ed25519."""
        with map_errors(InputError, "cannot read the signing key"):
            key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise InputError("the signing key is not an Ed25519 private key")
        return cls(key)

    def private_pem(self) -> bytes:
        """PKCS#8 PEM of the private key (unencrypted; store it with mode 0600)."""
        return self._private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def key_id(self) -> str:
        """Hex SHA-256 of the raw public key."""
        return self._key_id

    @property
    def public_key(self) -> Ed25519PublicKey:
        """The verifying key."""
        return self._public

    def sign(self, data: bytes) -> bytes:
        """A 64-byte Ed25519 signature over ``data``."""
        return self._private.sign(data)


@dataclass(frozen=True)
class PublicKeyEntry:
    """One public key of the ring."""

    key_id: str
    public_key: Ed25519PublicKey
    created: str

    def to_json(self) -> dict[str, str]:
        """The ``keys[]`` member of ``GET /v1/keys``."""
        return {
            "key_id": self.key_id,
            "alg": ALG,
            "public_key_pem": public_key_pem(self.public_key),
            "created": self.created,
        }


def _load_public_pem(pem: str, *, where: str) -> Ed25519PublicKey:
    with map_errors(InputError, f"{where}: not a PEM public key"):
        key = serialization.load_pem_public_key(pem.encode("ascii"))
    if not isinstance(key, Ed25519PublicKey):
        raise InputError(f"{where}: not an Ed25519 public key")
    return key


class KeyRing:
    """Public keys by key id. Verifies signatures; never holds private keys."""

    def __init__(self, entries: list[PublicKeyEntry] | None = None) -> None:
        self._entries: dict[str, PublicKeyEntry] = {}
        for entry in entries or []:
            self._entries[entry.key_id] = entry

    def add(self, key: Ed25519PublicKey, *, created: str | None = None) -> PublicKeyEntry:
        """Add ``key`` (idempotent: an existing entry keeps its ``created`` time)."""
        key_id = key_id_for(key)
        if key_id not in self._entries:
            stamp = created or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            self._entries[key_id] = PublicKeyEntry(key_id, key, stamp)
        return self._entries[key_id]

    def get(self, key_id: str) -> Ed25519PublicKey | None:
        """The public key with this id, or None."""
        entry = self._entries.get(key_id)
        return entry.public_key if entry else None

    def public_keys(self) -> list[Ed25519PublicKey]:
        """All keys, oldest first."""
        return [e.public_key for e in self._entries.values()]

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def verify(self, key_id: str, data: bytes, signature: bytes) -> None:
        """Check an Ed25519 signature by key ``key_id``; raise :class:`SignatureError`."""
        key = self.get(key_id)
        if key is None:
            raise SignatureError(f"unknown key id {key_id}")
        try:
            key.verify(signature, data)
        except InvalidSignature as exc:
            raise SignatureError(f"signature by key {key_id} does not verify") from exc

    def to_json(self) -> dict[str, list[dict[str, str]]]:
        """The ``GET /v1/keys`` document."""
        return {"keys": [e.to_json() for e in self._entries.values()]}

    @classmethod
    def from_json(cls, text: str) -> KeyRing:
        """Parse the ``GET /v1/keys`` document; checks each key id against its key."""
        with map_errors(InputError, "keys: not JSON"):
            doc = json.loads(text)
        if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
            raise InputError("keys: expected an object with a 'keys' list")
        ring = cls()
        for n, item in enumerate(doc["keys"]):
            where = f"keys[{n}]"
            if not isinstance(item, dict) or not isinstance(item.get("public_key_pem"), str):
                raise InputError(f"{where}: expected an object with 'public_key_pem'")
            if item.get("alg", ALG) != ALG:
                raise InputError(f"{where}.alg: only {ALG} is supported")
            key = _load_public_pem(item["public_key_pem"], where=f"{where}.public_key_pem")
            claimed = item.get("key_id")
            if claimed is not None and claimed != key_id_for(key):
                raise InputError(f"{where}.key_id: does not match the public key")
            ring.add(key, created=str(item.get("created", "")))
        return ring

    @classmethod
    def from_pem(cls, text: str) -> KeyRing:
        """A ring holding the single PEM public key in ``text``."""
        ring = cls()
        ring.add(_load_public_pem(text, where="keys"), created="")
        return ring

    @classmethod
    def from_text(cls, text: str) -> KeyRing:
        """Either form: the ``GET /v1/keys`` JSON or a bare PEM public key."""
        if text.lstrip().startswith("-----BEGIN"):
            return cls.from_pem(text)
        return cls.from_json(text)

    @classmethod
    def from_file(cls, path: Path) -> KeyRing:
        """Read :meth:`from_text` from a file; :class:`InputError` if unreadable."""
        with map_errors(InputError, f"cannot read keys file {path}"):
            text = path.read_text(encoding="utf-8")
        return cls.from_text(text)
