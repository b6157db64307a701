"""``releasegate approve``: record an approval, a break-glass approval or a revocation.

Sends ``POST /v1/approvals`` to a server with the token from ``RELEASEGATE_TOKEN`` (role
``approver``); the server records the token's subject as the approver. Prints the record.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from typing import Any

from engine.errors import InputError

_DURATION = re.compile(r"^(\d+)([smhd]?)$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """``90``, ``90s``, ``15m``, ``4h``, ``7d`` -> seconds."""
    match = _DURATION.match(text.strip())
    if match is None or int(match.group(1)) <= 0:
        raise InputError(f"--expires-in: {text!r} is not a duration like 30m, 4h or 2d")
    return int(match.group(1)) * _UNIT_S[match.group(2)]


def build_body(args: argparse.Namespace) -> dict[str, Any]:
    """The ``POST /v1/approvals`` body from the flags."""
    kind = "revoke" if args.revoke else ("break_glass" if args.break_glass else "approve")
    body: dict[str, Any] = {
        "release_id": args.release_id,
        "artifact_digest": args.artifact,
        "environment": args.environment,
        "kind": kind,
    }
    if args.revoke:
        body["revokes"] = args.revoke
    if args.comment:
        body["comment"] = args.comment
    if args.ticket:
        body["ticket"] = args.ticket
    if args.expires_in:
        body["expires_in_s"] = parse_duration(args.expires_in)
    return body


def run(args: argparse.Namespace) -> int:
    """Send the approval; print the stored record."""
    from engine.adapters.client import call

    if not args.server:
        raise InputError("--server: the releasegate server URL is required")
    if args.break_glass and args.revoke:
        raise InputError("--break-glass and --revoke cannot be combined")
    record = call(args.server, "POST", "/v1/approvals", body=build_body(args))
    if args.format == "json":
        print(json.dumps(record, indent=2))
    else:
        print(
            f"recorded {record.get('kind')} {record.get('id')} by {record.get('approver')} "
            f"for {record.get('release_id')} in {record.get('environment')}"
        )
    return 0


def register(subparsers: Any) -> None:
    """Add the ``approve`` sub-command."""
    p = subparsers.add_parser(
        "approve",
        help="record an approval of a release on a server (token from RELEASEGATE_TOKEN)",
        description="Approve (or break-glass approve, or revoke an approval of) a release for "
        "one artifact digest and environment. Approval records are never changed: a "
        "revocation is a new record.",
    )
    p.add_argument("--server", default=os.environ.get("RELEASEGATE_SERVER"), metavar="URL")
    p.add_argument("--release-id", required=True)
    p.add_argument("--artifact", required=True, metavar="sha256:HEX")
    p.add_argument("--environment", required=True)
    p.add_argument("--comment")
    p.add_argument("--ticket")
    p.add_argument("--expires-in", metavar="DURATION", help="e.g. 4h (default and max: server)")
    p.add_argument("--break-glass", action="store_true", help="a break-glass approval")
    p.add_argument("--revoke", metavar="ID", help="revoke the approval with this id")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=run)
