"""Signing keys on disk, in the state directory.

Layout under ``<state-dir>/keys/``:

* ``signing-key.pem``  the active Ed25519 private key, PKCS#8 PEM, mode 0600;
* ``public-keys.json`` the key ring (``GET /v1/keys`` document): every public key that
  ever signed, so rotation keeps old records verifiable.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from engine.errors import ConfigError, EngineError
from engine.log.signing import Ed25519Signer, KeyRing

PRIVATE_KEY_FILE = "signing-key.pem"
KEYRING_FILE = "public-keys.json"


def keys_dir(state_dir: Path) -> Path:
    """Where the key files live."""
    return state_dir / "keys"


def _write_atomic(path: Path, data: bytes, *, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_keyring(state_dir: Path) -> KeyRing:
    """The ring stored in the state directory (empty if there is none yet)."""
    path = keys_dir(state_dir) / KEYRING_FILE
    if not path.exists():
        return KeyRing()
    try:
        return KeyRing.from_file(path)
    except EngineError as exc:
        raise ConfigError(f"key ring {path} is unreadable: {exc}") from exc


def generate_signing_key(state_dir: Path) -> Ed25519Signer:
    """Create a new active key; the previous public keys stay in the ring.

    The private key file is written atomically with mode 0600; the old private key is
    replaced (it can no longer sign, its public key still verifies).
    """
    signer = Ed25519Signer.generate()
    ring = load_keyring(state_dir)
    previous = keys_dir(state_dir) / PRIVATE_KEY_FILE
    if previous.exists():
        ring.add(_read_private(previous).public_key)
    ring.add(signer.public_key)
    ring_bytes = (json.dumps(ring.to_json(), indent=2) + "\n").encode("utf-8")
    _write_atomic(keys_dir(state_dir) / KEYRING_FILE, ring_bytes, mode=0o644)
    _write_atomic(previous, signer.private_pem(), mode=0o600)
    return signer


def _read_private(path: Path) -> Ed25519Signer:
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"signing key {path} is unreadable: {exc.strerror}") from exc
    try:
        return Ed25519Signer.from_pem(pem)
    except EngineError as exc:
        raise ConfigError(f"signing key {path} is invalid: {exc}") from exc


def load_signing_key(state_dir: Path, *, create: bool) -> tuple[Ed25519Signer, KeyRing]:
    """The active signer and the ring (which always contains the active key).

    With ``create=False`` a missing or unreadable key is a :class:`ConfigError`: the
    service refuses to start rather than log unsigned or under a surprise new key. With
    ``create=True`` a key is made only on the first start (an empty key ring).
    """
    path = keys_dir(state_dir) / PRIVATE_KEY_FILE
    if not path.exists():
        if not create:
            raise ConfigError(
                f"signing key {path} does not exist; run "
                f"'releasegate keys generate --state-dir {state_dir}' first"
            )
        # NOTE: ``create`` is for the first start only. A ring that already lists keys
        # means the active key was lost (deleted, or a secret mount that failed): refuse
        # rather than sign on under a surprise new key.
        earlier = len(load_keyring(state_dir))
        if earlier:
            raise ConfigError(
                f"signing key {path} is missing, but the key ring lists {earlier} "
                f"earlier key(s): restore the key, or rotate deliberately with "
                f"'releasegate keys generate --state-dir {state_dir}'"
            )
        signer = generate_signing_key(state_dir)
    else:
        signer = _read_private(path)
    ring = load_keyring(state_dir)
    ring.add(signer.public_key)
    return signer, ring
