"""Normalized vulnerability facts from scanner reports and VEX documents."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from engine.models.common import SectionStatus, StrictModel

Severity = Literal["CRITICAL", "HIGH", "MEDIUM", "LOW", "NONE", "UNKNOWN"]


class VulnerabilityFact(StrictModel):
    """One vulnerability in one package, de-duplicated across scanners and aliases."""

    id: str
    aliases: list[str] = Field(default_factory=list)
    severity: Severity = "UNKNOWN"
    cvss_score: float | None = None
    cvss_vector: str | None = None
    package_name: str | None = None
    purl: str | None = None
    ecosystem: str | None = None
    installed_version: str | None = None
    fixed_versions: list[str] = Field(default_factory=list)
    fix_available: bool = False
    sources: list[str] = Field(default_factory=list)
    vex_status: str | None = None
    vex_justification: str | None = None
    suppressed: bool = False
    suppressed_by: str | None = None


class ScanReportFact(StrictModel):
    """Report-level facts: who scanned what, when, against which database."""

    index: int
    format: str
    scanner: str | None = None
    scanner_version: str | None = None
    scanned_at: str | None = None
    artifact_name: str | None = None
    artifact_digest: str | None = None
    """The request's digest if the report names it, else the first sha256 digest it names."""
    artifact_digests: list[str] = Field(default_factory=list)
    """Every ``sha256:`` digest the report names for its artifact (repo digests, image id)."""
    artifact_matches: bool | None = None
    """True/False when the report names a digest; ``None`` when it names none."""
    db: dict[str, str] = Field(default_factory=dict)
    counts: dict[str, int] = Field(default_factory=dict)
    """This report's distinct findings by severity, leaving out those it suppresses itself."""


class VulnerabilitiesSection(StrictModel):
    """The ``vulnerabilities`` section of the input document."""

    status: SectionStatus
    message: str | None = None
    reports: list[ScanReportFact] = Field(default_factory=list)
    findings: list[VulnerabilityFact] = Field(default_factory=list)
    counts: dict[str, int] = Field(default_factory=dict)
    """Unsuppressed findings by severity."""
