"""``--format json``: the Decision exactly as the API returns it."""

from __future__ import annotations

from engine.models.decision import Decision


class JsonFormat:
    """The contract's Decision document, indented."""

    def format(self, decision: Decision) -> str:
        """The decision as JSON."""
        return decision.model_dump_json(indent=2) + "\n"
