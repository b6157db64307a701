"""``releasegate policy test|lint|schema``: tools for the people who write policies."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from engine.config import DEFAULT_POLICY_DIR


def register(sub: Any) -> None:
    """Add the ``policy`` sub-commands."""
    p = sub.add_parser("policy", help="test, lint and type-check the Rego policies")
    psub = p.add_subparsers(dest="policy_command", metavar="ACTION", required=True)

    t = psub.add_parser("test", help="run the Rego unit tests with the real opa, with coverage")
    t.add_argument("policies", nargs="?", type=Path, default=DEFAULT_POLICY_DIR)
    t.add_argument("--min-coverage", type=float, default=95.0, help="fail below this percentage")
    t.set_defaults(func=run_test)

    lint = psub.add_parser("lint", help="opa check --strict with the input document schema")
    lint.add_argument("policies", nargs="?", type=Path, default=DEFAULT_POLICY_DIR)
    lint.set_defaults(func=run_lint)

    e = psub.add_parser(
        "eval",
        help="evaluate one input document (e.g. a logged record's input) with the managed OPA",
        description="Evaluate data.releasegate.decision for an input document with the same "
        "engine and bundle as every other path; prints {verdict, reasons, warnings}. Records "
        "nothing. Exit codes as for check: 0 allow, 3 pause, 4 rollback.",
    )
    e.add_argument("--input", type=Path, required=True, help="the input document (JSON)")
    e.add_argument("--bundle", type=Path, default=None, help="default: the committed bundle")
    e.set_defaults(func=run_eval)

    s = psub.add_parser("schema", help="write (or --check) policies/schema/input.json")
    s.add_argument("policies", nargs="?", type=Path, default=DEFAULT_POLICY_DIR)
    s.add_argument("--check", action="store_true", help="exit 1 when the committed schema is stale")
    s.set_defaults(func=run_schema)


def run_test(args: argparse.Namespace) -> int:
    """0 when every test passes and coverage meets the minimum, else 1."""
    from engine.policy_tools import run_policy_tests

    report = run_policy_tests(args.policies)
    sys.stdout.write(report.output)
    for name, lines in sorted(report.uncovered.items()):
        print(f"not covered: {name} lines {lines}")
    print(f"{report.passed} passed, {report.failed} failed; coverage {report.coverage:.1f}%")
    if report.failed:
        return 1
    if report.coverage < args.min_coverage:
        print(
            f"error: coverage {report.coverage:.1f}% is below {args.min_coverage:.1f}%",
            file=sys.stderr,
        )
        return 1
    return 0


def run_lint(args: argparse.Namespace) -> int:
    """0 when the policies compile strictly and type-check against the input schema."""
    from engine.policy_tools import lint_policies

    lint_policies(args.policies)
    print(f"{args.policies}: opa check --strict with the input schema: ok")
    return 0


def run_schema(args: argparse.Namespace) -> int:
    """Write the input schema, or compare it with the committed one."""
    from engine.policy_tools import SCHEMA_FILE, input_schema_json

    target = args.policies / SCHEMA_FILE
    fresh = input_schema_json()
    if args.check:
        current = target.read_text() if target.is_file() else ""
        if current != fresh:
            print(f"error: {target} is stale; run `releasegate policy schema`", file=sys.stderr)
            return 1
        print(f"{target}: up to date")
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(fresh)
    print(f"wrote {target}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    """Evaluate an input document; fail closed exactly like the pipeline."""
    from engine.adapters.exit_codes import exit_code
    from engine.config import build_settings
    from engine.decision import evaluate
    from engine.models.inputs import InputDocumentV1
    from engine.models.parse import load_json_file, parse_model
    from engine.runtime import build_engine

    document = parse_model(
        InputDocumentV1, load_json_file(args.input, what="input document"), what="input document"
    )
    engine = build_engine(build_settings(bundle=args.bundle))
    try:
        result = evaluate(engine, document.model_dump(mode="json"))
    finally:
        engine.close()
    print(result.model_dump_json(indent=2))
    return exit_code(result.verdict)
