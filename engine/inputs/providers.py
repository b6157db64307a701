"""The production providers, wrapping the verifiers and parsers behind the provider seams."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from engine.inputs.provenance import ProvenanceVerifier, build_provenance_section
from engine.inputs.scans import build_vulnerabilities_section
from engine.inputs.slo import SloProvider
from engine.models.inputs import ReleaseFacts
from engine.models.provenance import ProvenanceSection
from engine.models.request import ScanEvidence
from engine.models.slo import SloSection
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


class PrometheusSlo:
    """SLO state read from Prometheus at the decision time."""

    def __init__(self, provider: SloProvider) -> None:
        self.provider = provider

    def collect(self, release: ReleaseFacts, *, now_ns: int) -> SloSection:
        """Every query evaluated at ``now_ns``, so the facts replay."""
        return self.provider.collect(release, now=datetime.fromtimestamp(now_ns / 1e9, tz=UTC))

    def close(self) -> None:
        """Release the HTTP connection pool."""
        self.provider.close()
