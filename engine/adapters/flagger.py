"""Flagger webhooks: ``POST /v1/hooks/flagger/{hook}``.

Flagger posts ``{name, namespace, phase, checksum, metadata}`` to each webhook of a Canary
and reads only the HTTP status. Status codes follow contract §7:

===================================================  ======  ======  ========
hook                                                 allow   pause   rollback
===================================================  ======  ======  ========
confirm-rollout, confirm-traffic-increase,           200     403     403
confirm-promotion (Flagger halts and asks again)
pre-rollout, rollout (a 403 counts toward the        200     403     403
analysis failure threshold)
rollback (200 makes Flagger roll back)               403     403     200
post-rollout (runs after promotion or rollback;      200     200     200
Flagger only logs failures, so the verdict is
recorded and returned in the body, never an error)
===================================================  ======  ======  ========

Release identity comes from the webhook ``metadata`` (``release_id``, ``service``,
``environment``, ``artifact_digest``, ``artifact_uri``, ``version``, ``requested_by``),
falling back to the payload: service = canary name, environment = namespace, release id =
``<namespace>/<name>@<checksum>``, artifact digest = ``sha256`` of that release id
(synthetic: Flagger does not know image digests; approvals then name that release id).
The stage is ``promote`` for confirm-promotion and ``canary`` for every other hook.
"""

from __future__ import annotations

import enum
import hashlib
from typing import assert_never

from pydantic import Field, ValidationError

from engine.adapters.rollouts import field_errors
from engine.errors import FieldError, InputError
from engine.models.common import NonEmptyStr, Stage, StrictModel, Verdict
from engine.models.request import DecisionRequestV1


class FlaggerHook(enum.StrEnum):
    """The webhook types releasegate answers (``event`` hooks are not gates)."""

    CONFIRM_ROLLOUT = "confirm-rollout"
    PRE_ROLLOUT = "pre-rollout"
    ROLLOUT = "rollout"
    CONFIRM_TRAFFIC_INCREASE = "confirm-traffic-increase"
    CONFIRM_PROMOTION = "confirm-promotion"
    POST_ROLLOUT = "post-rollout"
    ROLLBACK = "rollback"

    @property
    def stage(self) -> Stage:
        """``promote`` for confirm-promotion, ``canary`` otherwise."""
        return Stage.PROMOTE if self is FlaggerHook.CONFIRM_PROMOTION else Stage.CANARY


class FlaggerPayload(StrictModel):
    """Flagger's ``CanaryWebhookPayload``; fields Flagger may add later are ignored."""

    model_config = StrictModel.model_config | {"extra": "ignore"}

    name: NonEmptyStr
    namespace: NonEmptyStr
    phase: str = ""
    checksum: str = ""
    metadata: dict[str, str] = Field(default_factory=dict)


def parse_hook(hook: str) -> FlaggerHook:
    """The hook named in the path; unknown hooks raise ``LookupError`` (HTTP 404)."""
    try:
        return FlaggerHook(hook)
    except ValueError:
        known = ", ".join(h.value for h in FlaggerHook)
        raise LookupError(f"unknown Flagger hook {hook!r}; known hooks: {known}") from None


def parse_payload(body: object) -> FlaggerPayload:
    """Validate the payload; raise :class:`InputError` naming each bad field."""
    try:
        return FlaggerPayload.model_validate(body)
    except ValidationError as exc:
        errors = field_errors(exc)
        where = ", ".join(e.loc for e in errors)
        raise InputError(f"invalid Flagger webhook payload ({where})", errors) from exc


# Where each request field comes from in the webhook metadata (for error locations).
_META_KEYS = {
    "release.id": "release_id",
    "release.service": "service",
    "release.environment": "environment",
    "release.version": "version",
    "release.requested_by": "requested_by",
    "artifact.uri": "artifact_uri",
    "artifact.digest": "artifact_digest",
}


def decision_request(payload: FlaggerPayload, hook: FlaggerHook) -> DecisionRequestV1:
    """The decision request a Flagger webhook call stands for."""
    meta = payload.metadata
    release_id = meta.get("release_id") or (
        f"{payload.namespace}/{payload.name}@{payload.checksum or 'unknown'}"
    )
    digest = meta.get("artifact_digest") or (
        "sha256:" + hashlib.sha256(release_id.encode()).hexdigest()
    )
    try:
        return DecisionRequestV1.model_validate(
            {
                "release": {
                    "id": release_id,
                    "service": meta.get("service") or payload.name,
                    "environment": meta.get("environment") or payload.namespace,
                    "stage": hook.stage.value,
                    "version": meta.get("version") or None,
                    "requested_by": meta.get("requested_by") or None,
                },
                "artifact": {"uri": meta.get("artifact_uri") or None, "digest": digest},
                "dry_run": meta.get("dry_run", "").lower() in {"1", "true", "yes"},
            }
        )
    except ValidationError as exc:
        errors = [
            FieldError("metadata." + _META_KEYS.get(e.loc, e.loc), e.message)
            for e in field_errors(exc)
        ]
        raise InputError("invalid Flagger webhook metadata", errors) from exc


def status_code(hook: FlaggerHook, verdict: Verdict) -> int:
    """The HTTP status Flagger acts on (contract §7; post-rollout: always 200)."""
    if hook is FlaggerHook.POST_ROLLOUT:
        return 200
    if hook is FlaggerHook.ROLLBACK:
        return 200 if verdict is Verdict.ROLLBACK else 403
    if verdict is Verdict.ALLOW:
        return 200
    if verdict is Verdict.PAUSE or verdict is Verdict.ROLLBACK:
        return 403
    assert_never(verdict)


__all__ = [
    "FlaggerHook",
    "FlaggerPayload",
    "decision_request",
    "parse_hook",
    "parse_payload",
    "status_code",
]
