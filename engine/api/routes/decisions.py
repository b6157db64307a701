"""``/v1/decisions``: decide (role ci), and read, query, prove and attest records (auditor).

``POST`` is served by :mod:`engine.api.hot_routes` (declared here for the OpenAPI document).
Deciding runs on the event loop (``DecisionPipeline.decide_async``: OPA awaited over asyncio,
the log's commit awaited); the read routes are sync ``def``, run in FastAPI's threadpool.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response
from fastapi.responses import JSONResponse

from engine.api.deps import (
    AuditorPrincipal,
    CiPrincipal,
    DecisionLogDep,
    PipelineDep,
    SettingsDep,
    set_decision_id,
)
from engine.api.errors import error_responses
from engine.api.schemas import DecisionPage, DsseEnvelope, InclusionProof
from engine.auth import Principal
from engine.decision import DecisionPipeline
from engine.log import DecisionRecordV1, build_vsa_envelope
from engine.models.common import Verdict
from engine.models.decision import Decision
from engine.models.request import DecisionRequestV1

router = APIRouter(tags=["decisions"])

_DECIDE_DOC = """Verify the evidence, evaluate the policy, record the decision in the signed log
and return it: 200 for every verdict (`allow`, `pause`, `rollback`). The decision records
the authenticated caller; `release.requested_by` is recorded as asserted by that caller.
When the log cannot be written the answer is 503 and carries no verdict."""


@router.post(
    "/v1/decisions",
    response_model=Decision,
    summary="Decide a release",
    description=_DECIDE_DOC,
    responses=error_responses(401, 403, 413, 422, 429, 503),
)
async def decide(
    request: DecisionRequestV1,
    principal: CiPrincipal,
    pipeline: PipelineDep,
) -> Response:
    """Run the pipeline; the decision is durable before it is returned.

    Requests are served by :mod:`engine.api.hot_routes`, ahead of this declaration (which
    the OpenAPI document describes); both call :func:`decide_response`.
    """
    return await decide_response(pipeline, request, principal)


async def decide_response(
    pipeline: DecisionPipeline, request: DecisionRequestV1, principal: Principal
) -> Response:
    """Decide and answer: the decision is durable before it is returned.

    The body is serialized here, once: returning the model would have FastAPI validate it
    against ``response_model`` again before serializing it (measured on the hot path).
    """
    decision = await pipeline.decide_async(request, caller=principal.subject, adapter="api")
    response = Response(decision.model_dump_json(), media_type="application/json")
    set_decision_id(response, decision.decision_id)
    return response


def _record(log: DecisionLogDep, decision_id: str) -> DecisionRecordV1:
    record = log.get(decision_id)
    if record is None:
        raise HTTPException(status_code=404, detail=f"no decision {decision_id}")
    return record


@router.get(
    "/v1/decisions/{decision_id}",
    response_model=DecisionRecordV1,
    summary="One decision record, with its signature",
    responses=error_responses(401, 403, 404, 429),
)
def get_decision(
    decision_id: str, principal: AuditorPrincipal, log: DecisionLogDep
) -> JSONResponse:
    """The stored record (Decision + masked input + request metadata)."""
    record = _record(log, decision_id)
    return JSONResponse(
        record.model_dump(mode="json"), headers={"X-Releasegate-Decision-Id": decision_id}
    )


@router.get(
    "/v1/decisions",
    response_model=DecisionPage,
    summary="Query decisions, newest first, in cursor pages",
    responses=error_responses(401, 403, 422, 429),
)
def query_decisions(
    principal: AuditorPrincipal,
    log: DecisionLogDep,
    service: str | None = None,
    environment: str | None = None,
    verdict: Verdict | None = None,
    release_id: str | None = None,
    artifact_digest: str | None = None,
    reason: str | None = None,
    since: Annotated[str | None, Query(description="RFC 3339, inclusive")] = None,
    until: Annotated[str | None, Query(description="RFC 3339, exclusive")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> JSONResponse:
    """Records matching every filter given."""
    page = log.query_page(
        service=service,
        environment=environment,
        verdict=None if verdict is None else verdict.value,
        release_id=release_id,
        artifact_digest=artifact_digest,
        reason=reason,
        since=since,
        until=until,
        limit=limit,
        cursor=cursor,
    )
    return JSONResponse(page.to_json())


@router.get(
    "/v1/decisions/{decision_id}/proof",
    response_model=InclusionProof,
    summary="Merkle inclusion proof (RFC 9162) of a record",
    responses=error_responses(401, 403, 404, 422, 429),
)
def inclusion_proof(
    decision_id: str,
    principal: AuditorPrincipal,
    log: DecisionLogDep,
    tree_size: Annotated[int | None, Query(ge=0, description="default: the current size")] = None,
) -> dict[str, Any]:
    """The audit path from the record's leaf to the root of the tree of ``tree_size``."""
    _record(log, decision_id)
    return log.inclusion_proof(decision_id, tree_size)


@router.get(
    "/v1/decisions/{decision_id}/vsa",
    response_model=DsseEnvelope,
    summary="SLSA VSA v1 in a DSSE envelope (allow decisions only)",
    description="404 when there is no such decision; 409 when the decision is not a "
    "non-dry-run `allow` (a VSA attests a passed verification only).",
    responses=error_responses(401, 403, 404, 409, 429),
)
def decision_vsa(
    decision_id: str,
    principal: AuditorPrincipal,
    log: DecisionLogDep,
    settings: SettingsDep,
) -> JSONResponse:
    """A VSA signed by the service key over the record's decision."""
    decision = _record(log, decision_id).decision()
    if decision.verdict is not Verdict.ALLOW or decision.dry_run:
        what = "a dry run" if decision.dry_run else f"verdict {decision.verdict.value}"
        raise HTTPException(
            status_code=409,
            detail=f"decision {decision_id} is {what}; a VSA is issued only for an allow",
        )
    envelope = build_vsa_envelope(
        decision,
        signer=log.signer,
        verifier_id=settings.vsa_verifier_id,
        policy_uri=f"urn:releasegate:policy:{decision.policy.revision}",
    )
    return JSONResponse(envelope, headers={"X-Releasegate-Decision-Id": decision_id})
