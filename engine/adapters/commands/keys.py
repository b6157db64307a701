"""``releasegate keys generate|show``: the log's Ed25519 signing keys in a state directory."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any


def default_state_dir() -> Path:
    """``RELEASEGATE_STATE_DIR`` or ``./.releasegate`` (contract §6)."""
    return Path(os.environ.get("RELEASEGATE_STATE_DIR", ".releasegate"))


def _generate(args: argparse.Namespace) -> int:
    from engine.log.keystore import PRIVATE_KEY_FILE, generate_signing_key, keys_dir, load_keyring

    state_dir: Path = args.state_dir
    signer = generate_signing_key(state_dir)
    ring = load_keyring(state_dir)
    print(f"key_id: {signer.key_id}")
    print(f"private key: {keys_dir(state_dir) / PRIVATE_KEY_FILE} (mode 0600)")
    print(f"public keys in ring: {len(ring)}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from engine.log.keystore import load_keyring

    print(json.dumps(load_keyring(args.state_dir).to_json(), indent=2))
    return 0


def register(subparsers: Any) -> None:
    """Add ``keys generate`` and ``keys show``."""
    parser = subparsers.add_parser("keys", help="manage the decision log signing keys")
    sub = parser.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    gen = sub.add_parser(
        "generate",
        help="create a new active signing key (older public keys stay verifiable)",
    )
    gen.add_argument("--state-dir", type=Path, default=default_state_dir())
    gen.set_defaults(func=_generate)
    show = sub.add_parser("show", help="print the public key ring (the GET /v1/keys document)")
    show.add_argument("--state-dir", type=Path, default=default_state_dir())
    show.set_defaults(func=_show)
