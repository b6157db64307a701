"""The versioned input document given to Rego (``input`` of ``data.releasegate.decision``).

Python verifies and normalizes evidence into this document; every decision rule lives in
Rego. The decision time is the fact ``now_ns``, so a stored document replays exactly.
"""

from __future__ import annotations

from typing import Final, Literal

from pydantic import Field

from engine.models.approvals import ApprovalsSection
from engine.models.common import NonEmptyStr, Sha256Digest, Stage, StrictModel, TimestampNs
from engine.models.provenance import ProvenanceSection
from engine.models.slo import SloSection
from engine.models.vulnerabilities import VulnerabilitiesSection

INPUT_SCHEMA_VERSION: Final = 1


class ReleaseFacts(StrictModel):
    """The release as asked for, plus who asked (the authenticated caller)."""

    id: NonEmptyStr
    service: NonEmptyStr
    environment: NonEmptyStr
    stage: Stage
    version: str | None = None
    requested_by: str | None = None
    caller: str | None = None
    """The authenticated subject that sent the request (``None`` for ``check --local``)."""


class ArtifactFacts(StrictModel):
    """The artifact under decision."""

    uri: str | None = None
    digest: Sha256Digest


class ImageFact(StrictModel):
    """One container image named by a workload under admission."""

    container: str
    kind: Literal["container", "init_container", "ephemeral_container"]
    image: str
    digest: str | None = None
    prior_decision_id: str | None = None
    prior_decision_age_s: float | None = None


class AdmissionSection(StrictModel):
    """Facts about a Kubernetes admission request (present only for adapter ``admission``)."""

    operation: str
    kind: str
    group: str = ""
    """API group of the object (``""`` for the core group, ``apps``, ``argoproj.io``...)."""
    supported: bool = True
    """False when the adapter does not know where this kind keeps its pod template."""
    namespace: str | None = None
    name: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    namespace_labels: dict[str, str] = Field(default_factory=dict)
    dry_run: bool = False
    images: list[ImageFact] = Field(default_factory=list)
    max_prior_age_s: float


class InputDocumentV1(StrictModel):
    """Everything the policy may look at, and nothing else."""

    schema_version: Literal[1] = INPUT_SCHEMA_VERSION
    now_ns: TimestampNs
    adapter: Literal["cli", "api", "admission", "argo-rollouts", "flagger", "replay"] = "cli"
    release: ReleaseFacts
    artifact: ArtifactFacts
    provenance: ProvenanceSection
    vulnerabilities: VulnerabilitiesSection
    slo: SloSection
    approvals: ApprovalsSection
    admission: AdmissionSection | None = None
