"""``releasegate check``: decide a release in process (``--local``) or on a server."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from engine.adapters.exit_codes import EXIT_USAGE, exit_code
from engine.adapters.formats import OutputFormat
from engine.adapters.request_builder import request_from_args
from engine.errors import InputError
from engine.models.common import Stage
from engine.models.decision import Decision
from engine.models.request import DecisionRequestV1


def register(sub: Any) -> None:
    """Add the ``check`` sub-command."""
    p = sub.add_parser(
        "check",
        help="decide whether a release may proceed (exit 0 allow, 3 pause, 4 rollback)",
        description="Verify the evidence of a release, evaluate the policy and print the "
        "verdict. Exit codes: 0 allow, 3 pause, 4 rollback, 2 invalid input, 1 internal error.",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument("--local", action="store_true", help="decide in this process")
    where.add_argument(
        "--server",
        metavar="URL",
        default=os.environ.get("RELEASEGATE_SERVER"),
        help="decide on a releasegate server (token from RELEASEGATE_TOKEN)",
    )
    p.add_argument("--request", metavar="FILE", help="a decision request document (JSON)")
    p.add_argument("--artifact", help="sha256:<hex> or <uri>@sha256:<hex>")
    p.add_argument(
        "--attestation",
        action="append",
        metavar="FILE",
        help="a Sigstore bundle / DSSE envelope (JSON or JSON Lines); repeatable",
    )
    p.add_argument(
        "--scan",
        action="append",
        metavar="[FORMAT:]FILE",
        help="a scanner report or OpenVEX document; repeatable",
    )
    p.add_argument("--service")
    p.add_argument("--environment")
    p.add_argument("--stage", choices=[s.value for s in Stage])
    p.add_argument("--release-id")
    p.add_argument("--version")
    p.add_argument("--requested-by", help="the person on whose behalf the release is asked for")
    p.add_argument("--dry-run", action="store_true")
    p.add_argument(
        "--format", type=OutputFormat, choices=list(OutputFormat), default=OutputFormat.TEXT
    )
    p.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="state directory for --local (default ./.releasegate)",
    )
    p.add_argument("--bundle", type=Path, default=None, help="policy bundle for --local")
    p.set_defaults(func=run)


def decide_locally(request: DecisionRequestV1, args: argparse.Namespace) -> Decision:
    """Start a managed OPA, decide, record in the local log, stop."""
    from engine.config import build_settings
    from engine.runtime import open_local_runtime

    settings = build_settings(state_dir=args.state_dir, bundle=args.bundle)
    runtime = open_local_runtime(settings)
    try:
        return runtime.pipeline.decide(request, caller=None, adapter="cli")
    finally:
        runtime.close()


def decide_on_server(request: DecisionRequestV1, server: str) -> Decision:
    """POST the request to ``/v1/decisions``."""
    from engine.adapters.client import call

    body = call(server, "POST", "/v1/decisions", body=request.model_dump(mode="json"))
    return Decision.model_validate(body)


def run(args: argparse.Namespace) -> int:
    """Decide and print; the exit code comes from the verdict."""
    if not args.local and not args.server:
        print("error: choose --local (decide in process) or --server URL", file=sys.stderr)
        return EXIT_USAGE
    request = request_from_args(args)
    if args.local:
        decision = decide_locally(request, args)
    else:
        decision = decide_on_server(request, args.server)
    formatter = args.format.to_format(color=sys.stdout.isatty())
    sys.stdout.write(formatter.format(decision))
    return exit_code(decision.verdict)


__all__ = ["InputError", "register", "run"]
