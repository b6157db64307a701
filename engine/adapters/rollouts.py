"""Argo Rollouts ``web`` metric provider: ``POST /v1/hooks/argo-rollouts``.

An ``AnalysisTemplate`` metric calls the hook with a JSON body (``jsonBody``) naming the
release; the answer carries the verdict at ``$.verdict``, so the template reads::

    successCondition: result == "allow"     # allow    -> Successful
    failureCondition: result == "rollback"  # rollback -> Failed (the rollout aborts)
                                            # pause    -> Inconclusive (the rollout pauses)

Only the live areas of the policy apply (SLO, approvals, freeze): the artifact's evidence was
judged by the CI ``check`` before it was deployed.
"""

from __future__ import annotations

import enum
from typing import Any, Literal, assert_never

from pydantic import ValidationError

from engine.errors import FieldError, InputError
from engine.models.common import NonEmptyStr, Sha256Digest, StrictModel, Verdict
from engine.models.decision import Decision
from engine.models.request import Artifact, DecisionRequestV1, Release

DECISION_ID_HEADER = "X-Releasegate-Decision-Id"


class RolloutHookRequest(StrictModel):
    """The ``jsonBody`` an AnalysisTemplate sends (unknown fields are rejected)."""

    release_id: NonEmptyStr
    service: NonEmptyStr
    environment: NonEmptyStr
    stage: Literal["canary", "promote"] = "canary"
    artifact_digest: Sha256Digest
    artifact_uri: NonEmptyStr | None = None
    version: NonEmptyStr | None = None
    requested_by: NonEmptyStr | None = None
    dry_run: bool = False

    def to_decision_request(self) -> DecisionRequestV1:
        """The decision request this hook call stands for (no evidence: live areas only)."""
        return DecisionRequestV1(
            release=Release(
                id=self.release_id,
                service=self.service,
                environment=self.environment,
                stage=self.stage,  # type: ignore[arg-type]
                version=self.version,
                requested_by=self.requested_by,
            ),
            artifact=Artifact(uri=self.artifact_uri, digest=self.artifact_digest),
            dry_run=self.dry_run,
        )


def field_errors(exc: ValidationError, *, prefix: str = "") -> list[FieldError]:
    """Pydantic errors as ``FieldError`` with dotted locations."""
    return [
        FieldError(prefix + ".".join(str(p) for p in e["loc"]) or "body", e["msg"])
        for e in exc.errors()
    ]


def parse_rollout_hook(body: object) -> RolloutHookRequest:
    """Validate the hook body; raise :class:`InputError` naming each bad field."""
    try:
        return RolloutHookRequest.model_validate(body)
    except ValidationError as exc:
        errors = field_errors(exc)
        where = ", ".join(e.loc for e in errors)
        raise InputError(f"invalid Argo Rollouts hook body ({where})", errors) from exc


class MetricOutcome(enum.StrEnum):
    """How Argo Rollouts reads the verdict with the conditions of the module docstring."""

    SUCCESSFUL = "Successful"
    INCONCLUSIVE = "Inconclusive"
    FAILED = "Failed"


def metric_outcome(verdict: Verdict) -> MetricOutcome:
    """allow → Successful, pause → Inconclusive (pauses the rollout), rollback → Failed."""
    if verdict is Verdict.ALLOW:
        return MetricOutcome.SUCCESSFUL
    if verdict is Verdict.PAUSE:
        return MetricOutcome.INCONCLUSIVE
    if verdict is Verdict.ROLLBACK:
        return MetricOutcome.FAILED
    assert_never(verdict)


def metric_response(decision: Decision) -> dict[str, Any]:
    """The JSON the metric reads: ``verdict`` first, then why and which decision."""
    return {
        "verdict": decision.verdict.value,
        "outcome": metric_outcome(decision.verdict).value,
        "decision_id": decision.decision_id,
        "reasons": [r.model_dump(mode="json") for r in decision.reasons],
        "warnings": [w.model_dump(mode="json") for w in decision.warnings],
        "release": decision.release,
        "artifact": decision.artifact,
    }


__all__ = [
    "DECISION_ID_HEADER",
    "MetricOutcome",
    "RolloutHookRequest",
    "field_errors",
    "metric_outcome",
    "metric_response",
    "parse_rollout_hook",
]
