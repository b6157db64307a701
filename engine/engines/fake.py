"""A ``PolicyEngine`` for unit tests: returns scripted results or raises scripted errors."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from engine.errors import PolicyError
from engine.models.decision import EngineInfo, PolicyInfo, PolicyResult

Responder = Callable[[Mapping[str, Any]], PolicyResult | PolicyError]


class FakeEngine:
    """Implements ``PolicyEngine`` without OPA; every call is recorded in ``calls``."""

    def __init__(self, responder: Responder, *, revision: str = "fake") -> None:
        self._responder = responder
        self._revision = revision
        self.calls: list[Mapping[str, Any]] = []

    def evaluate(self, input_document: Mapping[str, Any]) -> PolicyResult:
        """Record the call and answer with the responder's result (or raise its error)."""
        self.calls.append(input_document)
        outcome = self._responder(input_document)
        if isinstance(outcome, PolicyError):
            raise outcome
        return outcome

    @property
    def info(self) -> EngineInfo:
        """A recognisable fake engine identity."""
        return EngineInfo(name="fake", version="0")

    @property
    def policy(self) -> PolicyInfo:
        """A fake policy identity."""
        return PolicyInfo(revision=self._revision, digest="sha256:" + "0" * 64)

    def close(self) -> None:
        """Nothing to release."""
