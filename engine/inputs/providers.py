"""The production providers, wrapping the verifiers and parsers behind the provider seams."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from datetime import UTC, datetime

from engine.inputs.provenance import ProvenanceVerifier, build_provenance_section
from engine.inputs.scans import build_vulnerabilities_section
from engine.inputs.slo import SloProvider
from engine.jsonfast import fingerprint
from engine.models.inputs import ReleaseFacts
from engine.models.provenance import ProvenanceSection
from engine.models.raw import EvidenceDocument, object_key
from engine.models.request import ScanEvidence
from engine.models.slo import SloSection
from engine.models.vulnerabilities import VulnerabilitiesSection


class SigstoreProvenance:
    """Verifies Sigstore bundles and key-signed DSSE envelopes offline."""

    may_block = False  # offline: the trust root and keys are local files

    def __init__(self, verifier: ProvenanceVerifier) -> None:
        self.verifier = verifier

    def collect(
        self, attestations: Sequence[EvidenceDocument], *, artifact_digest: str
    ) -> ProvenanceSection:
        """One fact per attestation, failures included."""
        return build_provenance_section(
            attestations, artifact_digest=artifact_digest, verifier=self.verifier
        )


class ScanReports:
    """Parses scanner reports and applies VEX documents, remembering recent results.

    The section is a pure function of the reports (format + JSON value) and the artifact
    digest, so the last ``cache_size`` results are kept by the SHA-256 of each report: of
    its text when the service read it as a raw object (not parsed at all on a hit), else of
    its JSON, keys in document order (:func:`engine.models.raw.object_key`). The same
    report sent by every pipeline run is parsed once; the same report written differently
    is parsed again. Malformed reports raise every time and are not kept.
    """

    may_block = False

    def __init__(self, cache_size: int = 256) -> None:
        self._cache_size = cache_size
        self._cache: OrderedDict[str, VulnerabilitiesSection] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _key(scans: Sequence[ScanEvidence], artifact_digest: str) -> str | None:
        reports = [[s.format.value, object_key(s.report)] for s in scans]
        if any(key is None for _, key in reports):
            return None
        return fingerprint([artifact_digest, reports])

    def collect(
        self, scans: Sequence[ScanEvidence], *, artifact_digest: str
    ) -> VulnerabilitiesSection:
        """Normalized, de-duplicated findings; ``InputError`` for a malformed report."""
        key = self._key(scans, artifact_digest) if self._cache_size else None
        if key is not None:
            with self._lock:
                hit = self._cache.get(key)
                if hit is not None:
                    self._cache.move_to_end(key)
                    return hit
        section = build_vulnerabilities_section(scans, artifact_digest=artifact_digest)
        if key is not None:
            with self._lock:
                self._cache[key] = section
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return section


class PrometheusSlo:
    """SLO state read from Prometheus at the decision time."""

    may_block = True  # HTTP queries, bounded by the configured timeout

    def __init__(self, provider: SloProvider) -> None:
        self.provider = provider

    def collect(self, release: ReleaseFacts, *, now_ns: int) -> SloSection:
        """Every query evaluated at ``now_ns``, so the facts replay."""
        return self.provider.collect(release, now=datetime.fromtimestamp(now_ns / 1e9, tz=UTC))

    def close(self) -> None:
        """Release the HTTP connection pool."""
        self.provider.close()
