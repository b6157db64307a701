"""The ``releasegate`` command line. Errors are caught once, here, and become exit codes.

Exit codes (contract §6): 0 allow, 3 pause, 4 rollback, 2 invalid input or usage,
1 internal error. ``log verify`` and ``bundle verify``: 0 intact, 1 failed, 2 usage.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from engine import __version__
from engine.adapters.commands import load_command_modules
from engine.errors import BundleError, ConfigError, EngineError, InputError

EXIT_INTERNAL = 1
EXIT_USAGE = 2

_logger = logging.getLogger("releasegate")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every available sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="releasegate",
        description="Policy-as-code release gate: allow, pause or rollback, with reasons.",
    )
    parser.add_argument("--version", action="version", version=f"releasegate {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in load_command_modules():
        module.register(sub)
    return parser


def _exit_code_for(error: EngineError) -> int:
    if isinstance(error, InputError | ConfigError | BundleError):
        return EXIT_USAGE if isinstance(error, InputError | ConfigError) else EXIT_INTERNAL
    return EXIT_INTERNAL


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (``console_scripts`` passes it to ``sys.exit``)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        code: int = args.func(args)
        return code
    except EngineError as exc:
        print(f"error: {exc.diagnostics()}", file=sys.stderr)
        _logger.debug("error detail", exc_info=exc)
        return _exit_code_for(exc)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
