"""``releasegate log query|export|verify`` (contract §6).

``verify`` exits 0 when the export is intact, 1 when verification fails (naming the first
bad record), 2 on usage errors (missing or unreadable files).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.adapters.commands.keys import default_state_dir
from engine.errors import InputError, map_errors

if TYPE_CHECKING:
    from engine.log.decision_log import DecisionLog
    from engine.log.record import DecisionRecordV1

EXIT_OK = 0
EXIT_FAILED = 1

_FILTERS = (
    "service",
    "environment",
    "verdict",
    "release_id",
    "artifact_digest",
    "reason",
    "since",
    "until",
)


def _open(args: argparse.Namespace) -> DecisionLog:
    from engine.log.decision_log import open_decision_log

    return open_decision_log(args.state_dir, database_url=args.database_url, create_key=False)


def _line(record: DecisionRecordV1) -> str:
    index = record.log.index if record.log else "?"
    reasons = ",".join(r.code for r in record.reasons) or "-"
    rel = record.release
    return (
        f"{index:>6}  {record.timestamp}  {record.verdict.value:<8}  "
        f"{rel.get('service')}/{rel.get('environment')}  {rel.get('id')}  "
        f"{record.decision_id}  {reasons}"
    )


def _query(args: argparse.Namespace) -> int:
    filters = {name: getattr(args, name) for name in _FILTERS if getattr(args, name)}
    log = _open(args)
    try:
        records, cursor = log.query(limit=args.limit, cursor=args.cursor, **filters)
    finally:
        log.close()
    if args.format == "json":
        doc = {"records": [r.model_dump(mode="json") for r in records], "next_cursor": cursor}
        print(json.dumps(doc, indent=2, ensure_ascii=False))
    else:
        for record in records:
            print(_line(record))
        if cursor:
            print(f"next page: --cursor {cursor}")
    return EXIT_OK


def _export(args: argparse.Namespace) -> int:
    from engine.log.export import export_from_server

    out_path: Path = args.out
    tmp = out_path.with_name(out_path.name + ".partial")
    with map_errors(InputError, f"cannot write {out_path}"):
        handle = tmp.open("w", encoding="utf-8")
    try:
        with handle:
            if args.server:
                token = os.environ.get("RELEASEGATE_TOKEN")
                checkpoint = export_from_server(args.server, handle, token=token)
            else:
                log = _open(args)
                try:
                    checkpoint = log.export(handle)
                finally:
                    log.close()
        tmp.replace(out_path)
    finally:
        tmp.unlink(missing_ok=True)
    print(f"exported {checkpoint.size} records and the signed checkpoint to {out_path}")
    return EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    from engine.log.export import read_checkpoint_file
    from engine.log.signing import KeyRing
    from engine.log.verify import ExportVerificationError, verify_export

    keyring = KeyRing.from_file(args.keys)
    kept = read_checkpoint_file(args.since_checkpoint) if args.since_checkpoint else None
    with map_errors(InputError, f"cannot read export {args.export}"):
        handle = args.export.open("r", encoding="utf-8")
    with handle:
        try:
            report = verify_export(handle, keyring, since_checkpoint=kept)
        except ExportVerificationError as exc:
            if args.format == "json":
                doc: dict[str, Any] = {
                    "ok": False,
                    "first_bad_index": exc.index,
                    "error": exc.message,
                }
                print(json.dumps(doc, indent=2))
            else:
                print(f"log verify: FAILED: {exc.message}", file=sys.stderr)
            return EXIT_FAILED
    if args.format == "json":
        doc = {
            "ok": True,
            "size": report.size,
            "root_hash": report.root_hash,
            "origin": report.origin,
            "key_ids": list(report.key_ids),
            "consistent_with": report.consistent_with,
        }
        print(json.dumps(doc, indent=2))
    else:
        since = (
            f", consistent with the kept checkpoint of size {report.consistent_with}"
            if report.consistent_with is not None
            else ""
        )
        print(f"log verify: OK: {report.size} records, root {report.root_hash}{since}")
    return EXIT_OK


def _add_source(parser: argparse.ArgumentParser, *, server: bool) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--state-dir", type=Path, default=default_state_dir())
    if server:
        group.add_argument("--server", help="releasegate URL (token from RELEASEGATE_TOKEN)")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("RELEASEGATE_DATABASE_URL"),
        help="log database (default: SQLite in the state directory)",
    )


def register(subparsers: Any) -> None:
    """Add ``log query``, ``log export`` and ``log verify``."""
    parser = subparsers.add_parser("log", help="query, export and verify the decision log")
    sub = parser.add_subparsers(dest="log_command", metavar="ACTION", required=True)

    query = sub.add_parser("query", help="list decisions, newest first")
    _add_source(query, server=False)
    for name in _FILTERS:
        query.add_argument("--" + name.replace("_", "-"), dest=name)
    query.add_argument("--limit", type=int, default=50)
    query.add_argument("--cursor")
    query.add_argument("--format", choices=("text", "json"), default="text")
    query.set_defaults(func=_query, server=None)

    export = sub.add_parser("export", help="write JSON Lines: records, then the checkpoint")
    _add_source(export, server=True)
    export.add_argument("--out", type=Path, required=True)
    export.set_defaults(func=_export)

    verify = sub.add_parser("verify", help="verify an export offline with the public keys")
    verify.add_argument("--export", type=Path, required=True)
    verify.add_argument(
        "--keys", type=Path, required=True, help="GET /v1/keys JSON or a PEM public key"
    )
    verify.add_argument(
        "--since-checkpoint",
        type=Path,
        help="an earlier checkpoint (JSON or signed note) to check against",
    )
    verify.add_argument("--format", choices=("text", "json"), default="text")
    verify.set_defaults(func=_verify)
