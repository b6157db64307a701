"""The Decision of contract §4: the response and the body of every log record."""

from __future__ import annotations

from typing import Any

from pydantic import Field, PrivateAttr

from engine.models.common import StrictModel, Verdict


class Reason(StrictModel):
    """An enforced finding: it sets (or confirms) the verdict."""

    code: str
    verdict: Verdict
    policy: str
    message: str


class Warning(StrictModel):  # noqa: A001 - the contract's name
    """A finding in ``warn`` mode, or a waiver: recorded, never changes the verdict."""

    code: str
    policy: str
    message: str


class PolicyInfo(StrictModel):
    """Which policy bundle decided."""

    revision: str
    digest: str


class EngineInfo(StrictModel):
    """Which engine evaluated the policy."""

    name: str
    version: str


class LogInfo(StrictModel):
    """Where the decision sits in the tamper-evident log."""

    index: int
    record_hash: str
    prev_hash: str


class SignatureInfo(StrictModel):
    """The log's signature over the record hash."""

    alg: str = "Ed25519"
    key_id: str
    value: str


class PolicyResult(StrictModel):
    """What ``data.releasegate.decision`` must evaluate to; anything else is malformed."""

    verdict: Verdict
    reasons: list[Reason] = Field(default_factory=list)
    warnings: list[Warning] = Field(default_factory=list)
    _evaluated_policy: PolicyInfo | None = PrivateAttr(default=None)

    def evaluated_by(self, policy: PolicyInfo) -> PolicyResult:
        """Note which bundle produced this result (an engine that swaps bundles while other
        evaluations are in flight says so per result, not only in ``engine.policy``)."""
        self._evaluated_policy = policy
        return self

    @property
    def evaluated_policy(self) -> PolicyInfo | None:
        """The bundle that produced this result, when the engine said so."""
        return self._evaluated_policy


class Decision(StrictModel):
    """A verdict with its reasons, its provenance and (once logged) its signature."""

    decision_id: str
    timestamp: str
    verdict: Verdict
    reasons: list[Reason] = Field(default_factory=list)
    warnings: list[Warning] = Field(default_factory=list)
    release: dict[str, Any]
    artifact: dict[str, Any]
    dry_run: bool = False
    policy: PolicyInfo
    engine: EngineInfo
    input_digest: str
    log: LogInfo | None = None
    signature: SignatureInfo | None = None
