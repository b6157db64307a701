"""``/v1/approvals``: record (approver) and list (auditor, approver) approval records.

Records are append-only; a revocation is a record of kind ``revoke``. The approver and
their roles come from the authenticated token. Counting, roles, expiry and separation of
duties are decided in Rego when a decision reads these records.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from engine.api.deps import ApprovalReaderPrincipal, ApprovalStoreDep, ApproverPrincipal
from engine.api.errors import error_responses
from engine.api.schemas import ApprovalCreate, ApprovalList
from engine.approvals import ApprovalInput
from engine.models.approvals import ApprovalFact

router = APIRouter(tags=["approvals"])


@router.post(
    "/v1/approvals",
    response_model=ApprovalFact,
    status_code=201,
    summary="Record an approval, a break-glass approval or a revocation",
    description="`expires_in_s` defaults to the configured default and may not exceed the "
    "configured maximum (422). The approver is the token's subject.",
    responses=error_responses(401, 403, 413, 422, 429, 503),
)
def record_approval(
    body: ApprovalCreate, principal: ApproverPrincipal, store: ApprovalStoreDep
) -> ApprovalFact:
    """Append one record."""
    request = ApprovalInput(**body.model_dump())
    return store.record(request, approver=principal.subject, approver_roles=sorted(principal.roles))


@router.get(
    "/v1/approvals",
    response_model=ApprovalList,
    summary="Every approval record of a release",
    responses=error_responses(401, 403, 422, 429, 503),
)
def list_approvals(
    principal: ApprovalReaderPrincipal,
    store: ApprovalStoreDep,
    release_id: Annotated[str, Query(min_length=1, max_length=1024)],
) -> ApprovalList:
    """Oldest first, revocations included."""
    return ApprovalList(records=store.for_release(release_id))
