"""``releasegate replay``: which logged decisions would a new policy bundle change?"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    """Add the ``replay`` sub-command."""
    p = sub.add_parser(
        "replay",
        help="re-evaluate logged decisions under another policy bundle (impact analysis)",
        description="Re-evaluate the stored input documents of logged decisions under a new "
        "policy bundle with the real OPA and report which would change verdict, from what to "
        "what, and why. Writes nothing. Exit 0 (or 1 with --fail-on-change when a verdict "
        "changes).",
    )
    p.add_argument("--bundle", type=Path, required=True, help="policy bundle or directory")
    p.add_argument("--public-key", type=Path, help="verify the bundle's signature with this key")
    p.add_argument("--key-id", default="releasegate")
    p.add_argument("--signing-alg", default="ES256")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--state-dir", type=Path, help="the log of a state directory")
    source.add_argument("--export", type=Path, help="a `log export` file")
    p.add_argument("--database-url", help="the log database (default: the state directory's)")
    p.add_argument("--since", help="only decisions at or after this time (ISO 8601)")
    p.add_argument("--until", help="only decisions before this time (ISO 8601)")
    p.add_argument("--service")
    p.add_argument("--environment")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.add_argument("--fail-on-change", action="store_true")
    p.set_defaults(func=run)


def _in_window(record: Any, args: argparse.Namespace) -> bool:
    from engine.log.record import normalize_timestamp

    if args.service and record.release.get("service") != args.service:
        return False
    if args.environment and record.release.get("environment") != args.environment:
        return False
    stamp = normalize_timestamp(record.timestamp.replace("Z", "+00:00"))
    if args.since and stamp < normalize_timestamp(args.since):
        return False
    return not (args.until and stamp >= normalize_timestamp(args.until))


def run(args: argparse.Namespace) -> int:
    """Replay and print the impact report."""
    from engine.engines.opa import ManagedOpaEngine
    from engine.engines.policy_source import PolicySource
    from engine.replay import records_from_export, render_text, replay

    source = PolicySource(
        path=args.bundle,
        public_key=args.public_key,
        key_id=args.key_id,
        signing_alg=args.signing_alg,
    )
    engine = ManagedOpaEngine(source)
    log = None
    records: Iterator[Any]
    try:
        if args.export is not None:
            records = (r for r in records_from_export(args.export) if _in_window(r, args))
        else:
            from engine.log import open_decision_log

            state_dir = args.state_dir or Path(".releasegate")
            log = open_decision_log(state_dir, database_url=args.database_url, create_key=False)
            records = log.iter_records(
                since=args.since, until=args.until, service=args.service,
                environment=args.environment,
            )  # fmt: skip
        report = replay(records, engine)
    finally:
        engine.close()
        if log is not None:
            log.close()
    if args.format == "json":
        sys.stdout.write(json.dumps(report.as_dict(), indent=2) + "\n")
    else:
        sys.stdout.write(render_text(report))
    return 1 if args.fail_on_change and report.verdict_changes else 0
