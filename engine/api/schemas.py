"""Wire models of the API that are not already models of the engine (OpenAPI response types)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.log.record import DecisionRecordV1
from engine.models.approvals import ApprovalFact, ApprovalKind
from engine.models.common import NonEmptyStr, Sha256Digest


class DecisionPage(BaseModel):
    """``GET /v1/decisions``: records newest first; pass ``next_cursor`` for the next page."""

    records: list[DecisionRecordV1]
    next_cursor: str | None


class InclusionProof(BaseModel):
    """RFC 9162 inclusion proof of one record (hashes in ``audit_path`` are base64)."""

    decision_id: str
    leaf_index: int
    tree_size: int
    record_hash: str | None
    leaf_hash: str
    audit_path: list[str]
    root_hash: str


class ConsistencyProof(BaseModel):
    """RFC 9162 consistency proof between two tree sizes."""

    first: int
    second: int
    first_root_hash: str
    second_root_hash: str
    proof: list[str]


class Checkpoint(BaseModel):
    """A signed tree head: JSON fields plus the C2SP ``tlog-checkpoint`` signed note."""

    origin: str
    size: int
    root_hash: str
    timestamp: str
    key_id: str
    signature: str
    note: str


class DsseSignature(BaseModel):
    """One DSSE signature."""

    keyid: str
    sig: str


class DsseEnvelope(BaseModel):
    """A DSSE envelope (the VSA is its base64 ``payload``)."""

    payload: str
    payloadType: str  # noqa: N815 - DSSE field name
    signatures: list[DsseSignature]


class PublicKey(BaseModel):
    """One public key of the log's key ring."""

    key_id: str
    alg: str
    public_key_pem: str
    created: str


class KeysDocument(BaseModel):
    """``GET /v1/keys``: every key that ever signed, by key id (PEM)."""

    keys: list[PublicKey]


class ApprovalCreate(BaseModel):
    """``POST /v1/approvals``: the approver comes from the token, never from the body."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    release_id: NonEmptyStr
    artifact_digest: Sha256Digest
    environment: NonEmptyStr
    kind: ApprovalKind = "approve"
    revokes: NonEmptyStr | None = None
    comment: Annotated[str, Field(max_length=4096)] | None = None
    ticket: Annotated[str, Field(max_length=1024)] | None = None
    expires_in_s: Annotated[int, Field(gt=0)] | None = None
    """Seconds until the approval expires; default and maximum from the settings."""


class ApprovalList(BaseModel):
    """``GET /v1/approvals``: every record of a release, oldest first (revocations included)."""

    records: list[ApprovalFact]


class Health(BaseModel):
    """``/healthz``."""

    status: Literal["ok"]


class ReadyCheck(BaseModel):
    """One readiness check."""

    ok: bool
    detail: str


class Readiness(BaseModel):
    """``/readyz``: 200 when every check passes, else 503 with the same body."""

    status: Literal["ready", "not_ready"]
    checks: dict[str, ReadyCheck]
    policy: dict[str, str]
    engine: dict[str, str]
