"""C2SP signed notes and tlog-checkpoints."""

from __future__ import annotations

import base64
import dataclasses
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from engine.errors import SignatureError
from engine.log.checkpoint import (
    SignedCheckpoint,
    checkpoint_text,
    note_key_hash,
    open_note,
    sign_note,
)
from engine.log.signing import Ed25519Signer, KeyRing

# The example of golang.org/x/mod/sumdb/note (the C2SP signed-note reference): Ed25519 is
# deterministic, so signing its text with its key must reproduce its note byte for byte.
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT + "\n\u2014 PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def _go_signer() -> Ed25519Signer:
    blob = base64.b64decode(GO_SKEY.split("+", 4)[4])
    assert blob[0] == 1
    return Ed25519Signer(Ed25519PrivateKey.from_private_bytes(blob[1:]))


def test_signed_note_matches_go_reference_vector() -> None:
    signer = _go_signer()
    assert note_key_hash("PeterNeumann", signer.public_key).hex() == "c74f20a3"
    vkey_raw = base64.b64decode(GO_VKEY.split("+", 2)[2])
    assert vkey_raw[1:] == signer.public_key.public_bytes_raw()
    assert sign_note(GO_TEXT, key_name="PeterNeumann", signer=signer) == GO_NOTE
    ring = KeyRing()
    ring.add(signer.public_key)
    assert open_note(GO_NOTE, key_name="PeterNeumann", keyring=ring) == GO_TEXT


def test_open_note_rejects_tampering_and_unknown_keys() -> None:
    signer = _go_signer()
    ring = KeyRing()
    ring.add(signer.public_key)
    with pytest.raises(SignatureError, match="does not verify"):
        open_note(
            GO_NOTE.replace("cryptography", "cryptographx"), key_name="PeterNeumann", keyring=ring
        )
    other = KeyRing()
    other.add(Ed25519Signer.generate().public_key)
    with pytest.raises(SignatureError, match="no signature by a known key"):
        open_note(GO_NOTE, key_name="PeterNeumann", keyring=other)
    with pytest.raises(SignatureError, match="no signature by a known key"):
        open_note(GO_NOTE, key_name="SomeoneElse", keyring=ring)
    with pytest.raises(SignatureError, match="blank line"):
        open_note(GO_TEXT, key_name="PeterNeumann", keyring=ring)


def test_checkpoint_note_format_and_both_signatures() -> None:
    signer = Ed25519Signer.generate()
    root = hashlib.sha256(b"root").digest()
    cp = SignedCheckpoint.create(
        origin="example.com/log",
        size=20852163,
        root=root,
        timestamp="2026-11-26T12:00:00.000000Z",
        signer=signer,
    )
    body, sig_line = cp.note.split("\n\n")
    assert body + "\n" == checkpoint_text("example.com/log", 20852163, root)
    assert body.split("\n") == ["example.com/log", "20852163", base64.b64encode(root).decode()]
    dash, name, blob = sig_line.rstrip("\n").split(" ")
    raw = base64.b64decode(blob)
    assert (dash, name, len(raw)) == ("\u2014", "example.com/log", 68)
    assert raw[:4] == note_key_hash("example.com/log", signer.public_key)
    ring = KeyRing()
    ring.add(signer.public_key)
    cp.verify(ring)
    again = SignedCheckpoint.from_json(cp.to_json())
    again.verify(ring)
    assert again == cp
    bare = SignedCheckpoint.from_text(cp.note)
    bare.verify(ring)
    assert (bare.size, bare.root) == (cp.size, cp.root)


def test_checkpoint_json_fields_are_bound_to_the_signatures() -> None:
    signer = Ed25519Signer.generate()
    ring = KeyRing()
    ring.add(signer.public_key)
    cp = SignedCheckpoint.create(origin="o", size=3, root=bytes(32), timestamp="t", signer=signer)
    with pytest.raises(SignatureError, match="disagree"):
        dataclasses.replace(cp, size=4).verify(ring)
    with pytest.raises(SignatureError, match="does not verify"):
        dataclasses.replace(cp, timestamp="later").verify(ring)
