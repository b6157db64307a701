"""Signed tree heads: C2SP ``tlog-checkpoint`` signed notes and their JSON form.

Note text (https://c2sp.org/tlog-checkpoint)::

    <origin>\\n<tree size, decimal>\\n<base64 root hash>\\n

Signed note (https://c2sp.org/signed-note): the text, a blank line, then one line per
signature ``— <key name> <base64(key hash || signature)>\\n`` where the dash is U+2014,
the key name is the origin, the key hash is the first 4 bytes of
``SHA-256(key name || 0x0A || 0x01 || raw 32-byte Ed25519 public key)`` and the signature
is Ed25519 over the note text *including* its final newline.

JSON form (``GET /v1/log/checkpoint``, the last line of an export)::

    {"origin", "size", "root_hash": "sha256:<hex>", "timestamp", "key_id",
     "signature": base64 Ed25519 over RFC 8785 of {origin, size, root_hash, timestamp, key_id},
     "note": "<the signed note text>"}

The note is what transparency-log tooling reads; the JSON signature also covers the time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from engine.errors import InputError, SignatureError, map_errors
from engine.log.canonical import canonical_bytes, digest_bytes, digest_ref
from engine.log.signing import KeyRing, Signer, raw_public_bytes

EM_DASH = "\u2014"
_ALG_ED25519 = b"\x01"


def note_key_hash(key_name: str, public_key: Ed25519PublicKey) -> bytes:
    """The 4-byte C2SP signed-note key hash of an Ed25519 key under ``key_name``."""
    data = key_name.encode("utf-8") + b"\n" + _ALG_ED25519 + raw_public_bytes(public_key)
    return hashlib.sha256(data).digest()[:4]


def _check_key_name(name: str) -> None:
    if not name or any(c.isspace() for c in name) or "+" in name:
        raise InputError(f"note key name {name!r} must be non-empty, without spaces or '+'")


def sign_note(text: str, *, key_name: str, signer: Signer) -> str:
    """A C2SP signed note: ``text`` (newline-terminated), a blank line, one signature."""
    _check_key_name(key_name)
    if not text.endswith("\n") or "\n\n" in text:
        raise InputError("note text must end with a newline and contain no blank line")
    sig = signer.sign(text.encode("utf-8"))
    blob = base64.b64encode(note_key_hash(key_name, signer.public_key) + sig).decode("ascii")
    return f"{text}\n{EM_DASH} {key_name} {blob}\n"


def open_note(note: str, *, key_name: str, keyring: KeyRing) -> str:
    """Verify a signed note; returns its text. Raises :class:`SignatureError`.

    1. Split at the last blank line into text and signature lines.
    2. Find signature lines by ``key_name`` whose key hash names a key in the ring.
    3. Every such line must verify (a bad signature by a known key rejects the note);
       at least one must exist (unknown keys are ignored, as the spec requires).
    """
    cut = note.rfind("\n\n")
    if cut < 0 or not note.endswith("\n"):
        raise SignatureError("checkpoint note: no blank line before the signatures")
    text, sig_lines = note[: cut + 1], note[cut + 2 :].splitlines()
    known = {note_key_hash(key_name, k): k for k in keyring.public_keys()}
    verified = 0
    for line in sig_lines:
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != EM_DASH:
            raise SignatureError(f"checkpoint note: malformed signature line {line!r}")
        try:
            blob = base64.b64decode(parts[2], validate=True)
        except binascii.Error as exc:
            raise SignatureError("checkpoint note: signature is not base64") from exc
        if parts[1] != key_name or len(blob) < 5 or blob[:4] not in known:
            continue
        try:
            known[blob[:4]].verify(blob[4:], text.encode("utf-8"))
        except InvalidSignature as exc:
            raise SignatureError("checkpoint note: signature does not verify") from exc
        verified += 1
    if not verified:
        raise SignatureError(f"checkpoint note: no signature by a known key for {key_name!r}")
    return text


def checkpoint_text(origin: str, size: int, root: bytes) -> str:
    """The tlog-checkpoint note text."""
    return f"{origin}\n{size}\n{base64.b64encode(root).decode('ascii')}\n"


def parse_checkpoint_text(text: str) -> tuple[str, int, bytes]:
    """``(origin, size, root)`` from note text; :class:`SignatureError` if malformed."""
    lines = text.split("\n")
    if len(lines) < 4 or not lines[1].isdigit() or (lines[1] != "0" and lines[1][0] == "0"):
        raise SignatureError("checkpoint note: malformed text")
    try:
        root = base64.b64decode(lines[2], validate=True)
    except binascii.Error as exc:
        raise SignatureError("checkpoint note: root hash is not base64") from exc
    if len(root) != 32:
        raise SignatureError("checkpoint note: root hash is not 32 bytes")
    return lines[0], int(lines[1]), root


@dataclass(frozen=True)
class SignedCheckpoint:
    """A signed tree head in both forms (see the module docstring)."""

    origin: str
    size: int
    root: bytes
    timestamp: str
    key_id: str
    signature: str
    note: str

    @staticmethod
    def _signed_fields(origin: str, size: int, root: bytes, ts: str, key_id: str) -> bytes:
        return canonical_bytes(
            {
                "origin": origin,
                "size": size,
                "root_hash": digest_ref(root),
                "timestamp": ts,
                "key_id": key_id,
            }
        )

    @classmethod
    def create(
        cls, *, origin: str, size: int, root: bytes, timestamp: str, signer: Signer
    ) -> SignedCheckpoint:
        """Sign a tree head both as a C2SP note and as JSON."""
        note = sign_note(checkpoint_text(origin, size, root), key_name=origin, signer=signer)
        sig = signer.sign(cls._signed_fields(origin, size, root, timestamp, signer.key_id))
        return cls(
            origin, size, root, timestamp, signer.key_id, base64.b64encode(sig).decode(), note
        )

    def to_json(self) -> dict[str, Any]:
        """The ``GET /v1/log/checkpoint`` body."""
        return {
            "origin": self.origin,
            "size": self.size,
            "root_hash": digest_ref(self.root),
            "timestamp": self.timestamp,
            "key_id": self.key_id,
            "signature": self.signature,
            "note": self.note,
        }

    @classmethod
    def from_json(cls, doc: object) -> SignedCheckpoint:
        """Parse the JSON form (structure only; call :meth:`verify` before trusting it)."""
        if not isinstance(doc, dict):
            raise InputError("checkpoint: expected a JSON object")
        for name, kind in (("origin", str), ("size", int), ("root_hash", str)):
            if not isinstance(doc.get(name), kind):
                raise InputError(f"checkpoint.{name}: missing or not a {kind.__name__}")
        for name in ("timestamp", "key_id", "signature", "note"):
            if not isinstance(doc.get(name), str):
                raise InputError(f"checkpoint.{name}: missing or not a string")
        root = digest_bytes(doc["root_hash"], what="checkpoint.root_hash")
        return cls(
            doc["origin"],
            doc["size"],
            root,
            doc["timestamp"],
            doc["key_id"],
            doc["signature"],
            doc["note"],
        )

    @classmethod
    def from_text(cls, text: str) -> SignedCheckpoint:
        """The JSON form, or a bare signed note (then only the note is verifiable)."""
        stripped = text.strip()
        if stripped.startswith("{"):
            with map_errors(InputError, "checkpoint: not JSON"):
                doc = json.loads(stripped)
            return cls.from_json(doc)
        origin, size, root = parse_checkpoint_text(text.split("\n\n", 1)[0] + "\n")
        return cls(origin, size, root, "", "", "", text)

    def verify(self, keyring: KeyRing) -> None:
        """Check the note signature and (when present) the JSON signature.

        1. The note verifies under a ring key for this origin.
        2. The note's origin, size and root equal the JSON fields.
        3. The JSON signature verifies under ``key_id`` (a bare note has none).
        """
        text = open_note(self.note, key_name=self.origin, keyring=keyring)
        if parse_checkpoint_text(text) != (self.origin, self.size, self.root):
            raise SignatureError("checkpoint: note and JSON fields disagree")
        if not self.signature and not self.key_id:
            return
        try:
            sig = base64.b64decode(self.signature, validate=True)
        except binascii.Error as exc:
            raise SignatureError("checkpoint.signature: not base64") from exc
        fields = self._signed_fields(self.origin, self.size, self.root, self.timestamp, self.key_id)
        keyring.verify(self.key_id, fields, sig)
