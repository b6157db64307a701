"""The decision request of contract §3 (``POST /v1/decisions``, ``check --request``)."""

from __future__ import annotations

import enum

from pydantic import Field

from engine.models.common import NonEmptyStr, Sha256Digest, Stage, StrictModel
from engine.models.raw import EvidenceObject


class Release(StrictModel):
    """Which release is asking to move forward, and on whose behalf."""

    id: NonEmptyStr
    service: NonEmptyStr
    environment: NonEmptyStr
    stage: Stage
    version: NonEmptyStr | None = None
    requested_by: NonEmptyStr | None = None


class Artifact(StrictModel):
    """The artifact, named by its digest."""

    uri: NonEmptyStr | None = None
    digest: Sha256Digest


class ScanFormat(enum.StrEnum):
    """Scanner report formats accepted in ``evidence.scans[].format``."""

    AUTO = "auto"
    TRIVY = "trivy"
    GRYPE = "grype"
    SARIF = "sarif"
    CYCLONEDX = "cyclonedx"
    OSV = "osv"
    OPENVEX = "openvex"


class ScanEvidence(StrictModel):
    """One scanner report (or OpenVEX document) as produced by the tool."""

    format: ScanFormat = ScanFormat.AUTO
    report: EvidenceObject


class Evidence(StrictModel):
    """Raw evidence supplied by the caller; verified and normalized into facts."""

    # Each document is a dict, or (as the service's decision route reads a body) a
    # RawObject, parsed only when a cache misses (engine.models.raw).

    attestations: list[EvidenceObject] = Field(default_factory=list, max_length=64)
    scans: list[ScanEvidence] = Field(default_factory=list, max_length=64)


class DecisionRequestV1(StrictModel):
    """A request for a decision. Unknown fields are rejected."""

    release: Release
    artifact: Artifact
    evidence: Evidence = Field(default_factory=Evidence)
    dry_run: bool = False
