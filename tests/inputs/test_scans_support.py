"""Shared helpers for the scan-ingestion tests (real scanner outputs in tests/assets/scanners)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.inputs.scans import build_vulnerabilities_section
from engine.models.request import ScanEvidence, ScanFormat
from engine.models.vulnerabilities import VulnerabilitiesSection, VulnerabilityFact

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "scanners"
OTHER_DIGEST = "sha256:" + "0" * 64

ALPINE39 = "trivy/alpine-39.trivy.json"
ALPINE310_SARIF = "trivy/alpine-310.trivy.sarif"
ALPINE310_JSON = "constructed/alpine-310.trimmed.trivy.json"
NPM_CDX = "trivy/npm.trivy.cdx.json"
GOMOD_VEX_OUTPUT = "trivy/gomod-vex.trivy.json"
GOMOD_WITH_CVE = "constructed/gomod-with-cve-2022-23628.trivy.json"
GOMOD_OPENVEX = "trivy/gomod-vex.input.openvex.json"
TRIVY_OPENVEX = "trivy/trivy-project.openvex.json"
GRYPE = "grype/TestJsonImgsPresenter.grype.json"
OSV = "osv-scanner/test-vuln-results-a.osv-scanner.json"
CISA_VEX = "cyclonedx/cisa-case1-vex-not_affected.cdx.json"

ALL_CORPUS = {
    ALPINE39: ScanFormat.TRIVY,
    GOMOD_VEX_OUTPUT: ScanFormat.TRIVY,
    ALPINE310_SARIF: ScanFormat.SARIF,
    NPM_CDX: ScanFormat.CYCLONEDX,
    CISA_VEX: ScanFormat.CYCLONEDX,
    GRYPE: ScanFormat.GRYPE,
    OSV: ScanFormat.OSV,
    GOMOD_OPENVEX: ScanFormat.OPENVEX,
    TRIVY_OPENVEX: ScanFormat.OPENVEX,
}


def load(name: str) -> dict[str, Any]:
    """A report from tests/assets/scanners, parsed fresh (callers may mutate it)."""
    data = json.loads((ASSETS / name).read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def section(*reports: dict[str, Any] | str, digest: str = OTHER_DIGEST) -> VulnerabilitiesSection:
    """Build the section from asset names or report dicts, all with ``format: auto``."""
    scans = [ScanEvidence(report=load(r) if isinstance(r, str) else r) for r in reports]
    return build_vulnerabilities_section(scans, artifact_digest=digest)


def by_key(sec: VulnerabilitiesSection) -> dict[tuple[str, str | None], VulnerabilityFact]:
    """Findings keyed by (id, package name); fails if that key is not unique."""
    out = {(f.id, f.package_name): f for f in sec.findings}
    assert len(out) == len(sec.findings)
    return out


def zero_counts(**nonzero: int) -> dict[str, int]:
    """A full severity count dict."""
    counts = dict.fromkeys(("CRITICAL", "HIGH", "MEDIUM", "LOW", "NONE", "UNKNOWN"), 0)
    counts.update(nonzero)
    return counts
