"""Approval records as facts: counting, roles, expiry and separation of duties are Rego's."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from engine.models.common import SectionStatus, StrictModel, TimestampNs

ApprovalKind = Literal["approve", "break_glass", "revoke"]


class ApprovalFact(StrictModel):
    """One immutable approval record (a revocation is a record of kind ``revoke``)."""

    id: str
    kind: ApprovalKind = "approve"
    approver: str
    approver_roles: list[str] = Field(default_factory=list)
    release_id: str
    artifact_digest: str
    environment: str
    comment: str | None = None
    ticket: str | None = None
    revokes: str | None = None
    created_ns: TimestampNs
    expires_ns: TimestampNs


class ApprovalsSection(StrictModel):
    """The ``approvals`` section of the input document."""

    status: SectionStatus
    message: str | None = None
    records: list[ApprovalFact] = Field(default_factory=list)


NO_APPROVALS = ApprovalsSection(status=SectionStatus.OK, records=[])
"""A release nobody approved yet: known, and empty. Frozen, so one object serves every
decision (and the pipeline encodes it once)."""
