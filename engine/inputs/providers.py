"""The production providers, wrapping the verifiers and parsers behind the provider seams."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from engine.inputs.provenance import ProvenanceVerifier, build_provenance_section
from engine.inputs.scans import build_vulnerabilities_section
from engine.models.provenance import ProvenanceSection
from engine.models.request import ScanEvidence
from engine.models.vulnerabilities import VulnerabilitiesSection


class SigstoreProvenance:
    """Verifies Sigstore bundles and key-signed DSSE envelopes offline."""

    def __init__(self, verifier: ProvenanceVerifier) -> None:
        self.verifier = verifier

    def collect(
        self, attestations: Sequence[Mapping[str, Any]], *, artifact_digest: str
    ) -> ProvenanceSection:
        """One fact per attestation, failures included."""
        return build_provenance_section(
            attestations, artifact_digest=artifact_digest, verifier=self.verifier
        )


class ScanReports:
    """Parses scanner reports and applies VEX documents."""

    def collect(
        self, scans: Sequence[ScanEvidence], *, artifact_digest: str
    ) -> VulnerabilitiesSection:
        """Normalized, de-duplicated findings; ``InputError`` for a malformed report."""
        return build_vulnerabilities_section(scans, artifact_digest=artifact_digest)
