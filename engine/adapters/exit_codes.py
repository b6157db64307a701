"""Exit codes of ``releasegate check`` (contract §6), derived from the decision."""

from __future__ import annotations

from typing import assert_never

from engine.models.common import Verdict

EXIT_ALLOW = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_PAUSE = 3
EXIT_ROLLBACK = 4


def exit_code(verdict: Verdict) -> int:
    """0 allow, 3 pause, 4 rollback."""
    if verdict is Verdict.ALLOW:
        return EXIT_ALLOW
    if verdict is Verdict.PAUSE:
        return EXIT_PAUSE
    if verdict is Verdict.ROLLBACK:
        return EXIT_ROLLBACK
    assert_never(verdict)
