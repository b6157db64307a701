"""CLI sub-commands. Each module exposes ``register(subparsers)``; see ``engine.adapters.cli``.

A handler receives the parsed ``argparse.Namespace`` and returns the process exit code. It
raises :class:`engine.errors.EngineError` for anything a user should see; ``cli.main``
catches it once.
"""

from __future__ import annotations

import importlib
from types import ModuleType

COMMAND_MODULES: tuple[str, ...] = (
    "check",
    "policy",
    "serve",
    "token",
    "approve",
    "log",
    "replay",
    "bundle",
    "keys",
    "bench",
)


def load_command_modules() -> list[ModuleType]:
    """Import the command modules that exist (each issue adds its own)."""
    modules = []
    for name in COMMAND_MODULES:
        try:
            modules.append(importlib.import_module(f"{__name__}.{name}"))
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
    return modules
