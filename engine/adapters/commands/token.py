"""``releasegate token create|list|revoke``: bearer tokens of a state directory.

A new token is printed once; only its SHA-256 hash is stored (with subject, roles, creation
and revocation times) in the service database of the state directory.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any


def _default_state_dir() -> Path:
    return Path(os.environ.get("RELEASEGATE_STATE_DIR", ".releasegate"))


def _store(args: argparse.Namespace) -> Any:
    from engine.auth.sql import database_url
    from engine.auth.tokens import TokenStore

    state_dir: Path = args.state_dir
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    return TokenStore(database_url(state_dir, os.environ.get("RELEASEGATE_DATABASE_URL")))


def _create(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        token, info = store.create(args.subject, list(args.role or []))
    finally:
        store.close()
    if args.format == "json":
        print(json.dumps({"token": token, **info.to_json()}))
    else:
        print(token)
        print(
            f"# token id {info.token_id}, subject {info.subject}, roles "
            f"{', '.join(sorted(info.roles))}; shown once, only its hash is stored",
        )
    return 0


def _list(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        tokens = store.list()
    finally:
        store.close()
    if args.format == "json":
        print(json.dumps([t.to_json() for t in tokens], indent=2))
        return 0
    for t in tokens:
        state = f"revoked {t.revoked}" if t.revoked else "active"
        print(f"{t.token_id}  {t.subject}  {','.join(sorted(t.roles))}  {t.created}  {state}")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        info = store.revoke(args.token_id)
    finally:
        store.close()
    print(f"revoked {info.token_id} ({info.subject}) at {info.revoked}")
    return 0


def register(subparsers: Any) -> None:
    """Add ``token create``, ``token list`` and ``token revoke``."""
    from engine.auth import ROLES

    parser = subparsers.add_parser("token", help="manage API bearer tokens (stored hashed)")
    sub = parser.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    create = sub.add_parser("create", help="create a token; prints it once")
    create.add_argument("--subject", required=True, help="who the token identifies")
    create.add_argument(
        "--role", action="append", choices=ROLES, required=True, help="a role; repeatable"
    )
    listing = sub.add_parser("list", help="list tokens (ids, subjects, roles; never tokens)")
    revoke = sub.add_parser("revoke", help="revoke a token by id")
    revoke.add_argument("token_id", help="the id shown by `token create` / `token list`")
    for p, func in ((create, _create), (listing, _list), (revoke, _revoke)):
        p.add_argument("--state-dir", type=Path, default=_default_state_dir())
        p.add_argument("--format", choices=("text", "json"), default="text")
        p.set_defaults(func=func)
