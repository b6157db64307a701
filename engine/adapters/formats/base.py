"""The interface every ``check`` output format implements."""

from __future__ import annotations

from typing import Protocol

from engine.models.decision import Decision


class DecisionFormat(Protocol):
    """Renders a decision as text for stdout."""

    def format(self, decision: Decision) -> str:
        """The rendered decision (ends with a newline)."""
        ...
