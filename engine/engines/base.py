"""The ``PolicyEngine`` seam: evaluate an input document, return the policy's result."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from engine.models.decision import EngineInfo, PolicyInfo, PolicyResult

DECISION_PATH = "releasegate/decision"
"""The entrypoint rule, ``data.releasegate.decision``, as an OPA Data API path."""


class EncodedInput(dict[str, Any]):
    """An input document with its RFC 8785 encoding (:meth:`DecisionPipeline.encode_input`).

    OPA is sent these bytes as they are, so the document it evaluates is byte for byte the
    one the decision's ``input_digest`` names, and the client need not encode it again.
    Any other mapping is encoded by the client. Not to be changed once made: the bytes
    would no longer match.
    """

    __slots__ = ("canonical",)

    def __init__(self, document: Mapping[str, Any], canonical: bytes) -> None:
        super().__init__(document)
        self.canonical = canonical


class PolicyEngine(Protocol):
    """Evaluates ``data.releasegate.decision`` for an input document.

    ``evaluate`` returns the validated policy result or raises a
    :class:`engine.errors.PolicyError` (down, timeout, undefined or malformed result); the
    pipeline turns that error into a ``pause`` decision with reason ``engine_unavailable``.
    """

    def evaluate(self, input_document: Mapping[str, Any]) -> PolicyResult:
        """Evaluate the decision rule for one input document."""
        ...

    @property
    def info(self) -> EngineInfo:
        """Engine name and version."""
        ...

    @property
    def policy(self) -> PolicyInfo:
        """Revision and digest of the loaded policy bundle."""
        ...

    def close(self) -> None:
        """Release resources (stop a managed process)."""
        ...
