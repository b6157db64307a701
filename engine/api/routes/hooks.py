"""Progressive-delivery hooks (role ``rollout``): Argo Rollouts ``web`` metric and Flagger
webhooks. Every call is a logged decision; its id is in ``X-Releasegate-Decision-Id``.
Decided on the event loop like ``POST /v1/decisions`` (the SLO queries to Prometheus, when
configured, run in a worker thread: ``FactProviders.may_block``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException
from fastapi.responses import JSONResponse

from engine.adapters import flagger, rollouts
from engine.api.deps import DECISION_ID_HEADER, PipelineDep, RolloutPrincipal
from engine.api.errors import error_responses

router = APIRouter(tags=["hooks"])


@router.post(
    "/v1/hooks/argo-rollouts",
    summary="Argo Rollouts web metric",
    description="Body: `{release_id, service, environment, stage: canary|promote, "
    "artifact_digest}`. Answer: `{verdict, outcome, decision_id, reasons, warnings}`; use "
    '`jsonPath: "{$.verdict}"`, `successCondition: result == "allow"`, '
    '`failureCondition: result == "rollback"` (a pause is inconclusive).',
    responses=error_responses(401, 403, 413, 422, 429, 503),
)
async def argo_rollouts(
    body: Annotated[Any, Body()], principal: RolloutPrincipal, pipeline: PipelineDep
) -> JSONResponse:
    """Decide the live state of a rollout step; 200 for every verdict."""
    hook = rollouts.parse_rollout_hook(body)
    decision = await pipeline.decide_async(
        hook.to_decision_request(), caller=principal.subject, adapter="argo-rollouts"
    )
    return JSONResponse(
        rollouts.metric_response(decision),
        headers={DECISION_ID_HEADER: decision.decision_id},
    )


@router.post(
    "/v1/hooks/flagger/{hook}",
    summary="Flagger webhook",
    description="Hooks: confirm-rollout, pre-rollout, rollout, confirm-traffic-increase, "
    "confirm-promotion, post-rollout, rollback. Status codes per contract §7: 200 lets "
    "Flagger proceed (for `rollback`: roll back), 403 halts or counts as a failed check; "
    "post-rollout always answers 200.",
    responses=error_responses(401, 403, 404, 413, 422, 429, 503),
)
async def flagger_hook(
    hook: str, body: Annotated[Any, Body()], principal: RolloutPrincipal, pipeline: PipelineDep
) -> JSONResponse:
    """Decide a Flagger webhook; the status code carries the verdict."""
    try:
        kind = flagger.parse_hook(hook)
    except LookupError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    payload = flagger.parse_payload(body)
    decision = await pipeline.decide_async(
        flagger.decision_request(payload, kind), caller=principal.subject, adapter="flagger"
    )
    content = rollouts.metric_response(decision)
    content.pop("outcome")
    content["hook"] = kind.value
    return JSONResponse(
        content,
        status_code=flagger.status_code(kind, decision.verdict),
        headers={DECISION_ID_HEADER: decision.decision_id},
    )
