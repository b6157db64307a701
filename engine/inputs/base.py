"""Provider seams: each turns one kind of evidence into one section of the input document.

Providers never decide a verdict. A source that cannot be reached yields a section with
``status: unavailable``; evidence that is malformed and cannot be turned into facts either
yields ``status: invalid`` or raises :class:`engine.errors.InputError` (for caller mistakes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from engine.models.approvals import NO_APPROVALS, ApprovalsSection
from engine.models.common import SectionStatus
from engine.models.inputs import ArtifactFacts, ReleaseFacts
from engine.models.provenance import ProvenanceSection
from engine.models.raw import EvidenceDocument
from engine.models.request import ScanEvidence
from engine.models.slo import SloSection
from engine.models.vulnerabilities import VulnerabilitiesSection


class ProvenanceProvider(Protocol):
    """Verifies attestations (Sigstore bundles, DSSE envelopes) against the artifact."""

    def collect(
        self, attestations: Sequence[EvidenceDocument], *, artifact_digest: str
    ) -> ProvenanceSection:
        """Verify every attestation; one fact each, failures included."""
        ...


class VulnerabilityProvider(Protocol):
    """Parses and normalizes scanner reports and VEX documents."""

    def collect(
        self, scans: Sequence[ScanEvidence], *, artifact_digest: str
    ) -> VulnerabilitiesSection:
        """Normalize every report; raise ``InputError`` for an unknown or malformed one."""
        ...


class SloStateProvider(Protocol):
    """Reads SLO and error-budget state for the release's service."""

    def collect(self, release: ReleaseFacts, *, now_ns: int) -> SloSection:
        """Read the state at the decision time; unreachable sources give ``unavailable``."""
        ...


class ApprovalProvider(Protocol):
    """Reads approval records for a release from the approval store."""

    def collect(self, release: ReleaseFacts, artifact: ArtifactFacts) -> ApprovalsSection:
        """Every record about this release (approvals, break-glass, revocations)."""
        ...


# Frozen: one object serves every decision (and the pipeline encodes it once).
_NO_SLO = SloSection(status=SectionStatus.MISSING, message="no SLO configured")


class NoSloConfigured:
    """The SLO provider used when no Prometheus / SLO configuration is set."""

    may_block = False

    def collect(self, release: ReleaseFacts, *, now_ns: int) -> SloSection:
        """Always ``missing``: no SLO is configured for any service."""
        return _NO_SLO


class NoApprovalStore:
    """The approval provider for ``check --local`` without a state directory."""

    may_block = False

    def collect(self, release: ReleaseFacts, artifact: ArtifactFacts) -> ApprovalsSection:
        """An empty, but known, set of approvals."""
        return NO_APPROVALS


@dataclass(frozen=True)
class FactProviders:
    """The four providers a pipeline gathers facts from."""

    provenance: ProvenanceProvider
    vulnerabilities: VulnerabilityProvider
    slo: SloStateProvider
    approvals: ApprovalProvider

    def may_block(self) -> bool:
        """Whether gathering facts may wait on the network (Prometheus, a database server).

        A provider says it never does with ``may_block = False`` (it only computes, or reads
        a local file); one that does not say is assumed to. The service gathers facts on its
        event loop only when none may block (``DecisionPipeline.decide_async``).
        """
        providers = (self.provenance, self.vulnerabilities, self.slo, self.approvals)
        return any(getattr(p, "may_block", True) for p in providers)
