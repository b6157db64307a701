"""``/v1/log/*``: signed tree heads and consistency proofs (auditor)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from engine.api.deps import AuditorPrincipal, DecisionLogDep
from engine.api.errors import error_responses
from engine.api.schemas import Checkpoint, ConsistencyProof

router = APIRouter(tags=["log"])


@router.get(
    "/v1/log/checkpoint",
    response_model=Checkpoint,
    summary="Signed tree head: size, root hash, time, key id, signature",
    responses=error_responses(401, 403, 429, 503),
)
def checkpoint(principal: AuditorPrincipal, log: DecisionLogDep) -> dict[str, Any]:
    """A freshly signed checkpoint of the current tree."""
    return log.checkpoint().to_json()


@router.get(
    "/v1/log/consistency",
    response_model=ConsistencyProof,
    summary="Consistency proof (RFC 9162) between two tree sizes",
    responses=error_responses(401, 403, 422, 429),
)
def consistency(
    principal: AuditorPrincipal,
    log: DecisionLogDep,
    first: Annotated[int, Query(ge=1)],
    second: Annotated[int, Query(ge=1)],
) -> dict[str, Any]:
    """Proof that the tree of size ``first`` is a prefix of the tree of size ``second``."""
    return log.consistency_proof(first, second)
