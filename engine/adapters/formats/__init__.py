"""Output formats for ``check``: one module per format, chosen through ``OutputFormat``."""

from __future__ import annotations

import enum
from typing import assert_never

from engine.adapters.formats.base import DecisionFormat


class OutputFormat(enum.StrEnum):
    """``--format`` choices of ``releasegate check``."""

    TEXT = "text"
    JSON = "json"
    SARIF = "sarif"
    JUNIT = "junit"
    GITHUB = "github"

    def __str__(self) -> str:
        return self.value

    def to_format(self, *, color: bool = False) -> DecisionFormat:
        """The formatter for this choice."""
        # NOTE(lead): imports are local so the CLI only loads the formatter it uses.
        if self is OutputFormat.TEXT:
            from engine.adapters.formats.text import TextFormat

            return TextFormat(color=color)
        if self is OutputFormat.JSON:
            from engine.adapters.formats.json import JsonFormat

            return JsonFormat()
        if self is OutputFormat.SARIF:
            from engine.adapters.formats.sarif import SarifFormat

            return SarifFormat()
        if self is OutputFormat.JUNIT:
            from engine.adapters.formats.junit import JunitFormat

            return JunitFormat()
        if self is OutputFormat.GITHUB:
            from engine.adapters.formats.github import GithubFormat

            return GithubFormat()
        assert_never(self)


__all__ = ["DecisionFormat", "OutputFormat"]
