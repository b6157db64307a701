"""OSV-Scanner JSON (``osv-scanner --format json``): ``results[].packages[].vulnerabilities[]``.

Each vulnerability is a full OSV record. Severity comes from ``database_specific.severity``
(GHSA's ``LOW``/``MODERATE``/``HIGH``/``CRITICAL``) when given, else from the CVSS v3
vector in ``severity[]`` (scored here); CVSS v4-only records stay ``UNKNOWN``. Fixed
versions are the ``fixed`` events of the ``affected[]`` entries for the scanned package.
"""

from __future__ import annotations

from typing import Final

from engine.inputs.scans.access import Node
from engine.inputs.scans.normalize import (
    ParsedReport,
    RawFinding,
    cvss3_base_score,
    severity_from_score,
    severity_from_word,
    source_label,
)
from engine.models.vulnerabilities import Severity

_ECOSYSTEM_PURL_TYPES: Final[dict[str, str]] = {
    "go": "golang",
    "crates.io": "cargo",
    "npm": "npm",
    "pypi": "pypi",
    "maven": "maven",
    "rubygems": "gem",
    "nuget": "nuget",
    "packagist": "composer",
    "pub": "pub",
    "hex": "hex",
    "alpine": "apk",
    "debian": "deb",
    "ubuntu": "deb",
}


def _severity(vuln: Node) -> tuple[Severity, float | None, str | None]:
    score: float | None = None
    vector: str | None = None
    for entry in vuln.child("severity").items():
        text = entry.child("score").opt_str()
        computed = cvss3_base_score(text) if text else None
        if computed is not None and (score is None or computed > score):
            score, vector = computed, text
    word = vuln.child("database_specific").child("severity").opt_str()
    severity = severity_from_word(word) if word else "UNKNOWN"
    if severity == "UNKNOWN":
        severity = severity_from_score(score)
    return severity, score, vector


def _fixed_versions(vuln: Node, name: str | None, ecosystem: str | None) -> list[str]:
    """``fixed`` events of the ``affected[]`` entries naming the package (else of all)."""
    matching: list[str] = []
    every: list[str] = []
    for affected in vuln.child("affected").items():
        package = affected.child("package")
        same = package.child("name").opt_str() == name and (
            (package.child("ecosystem").opt_str() or "").lower() == (ecosystem or "").lower()
        )
        for range_ in affected.child("ranges").items():
            for event in range_.child("events").items():
                fixed = event.child("fixed").opt_str()
                if fixed is None:
                    continue
                every.append(fixed)
                if same:
                    matching.append(fixed)
    return matching or every


def _finding(vuln: Node, package: Node, source: str) -> RawFinding:
    vuln.require_obj()
    name = package.child("name").opt_str()
    version = package.child("version").opt_str()
    ecosystem = package.child("ecosystem").opt_str()
    severity, score, vector = _severity(vuln)
    purl = package.child("purl").opt_str()
    purl_type = _ECOSYSTEM_PURL_TYPES.get((ecosystem or "").lower())
    if purl is None and purl_type and name and version:
        # NOTE: a purl built from the ecosystem, so OpenVEX statements can match OSV
        # findings; Go module versions carry a "v" that osv-scanner drops.
        if purl_type == "golang" and version[:1].isdigit():
            version_text = f"v{version}"
        else:
            version_text = version
        purl = f"pkg:{purl_type}/{name.replace(':', '/')}@{version_text}"
    finding = RawFinding(
        id=vuln.child("id").req_str(),
        source=source,
        aliases=vuln.child("aliases").str_items(),
        severity=severity,
        cvss_score=score,
        cvss_vector=vector,
        package_name=name,
        purl=purl,
        ecosystem=purl_type or (ecosystem.lower() if ecosystem else None),
        installed_version=version,
        fixed_versions=_fixed_versions(vuln, name, ecosystem),
    )
    return finding


def parse_osv(root: Node) -> ParsedReport:
    """Read an OSV-Scanner JSON report."""
    root.require_obj()
    results = root.child("results").require_items()
    report = ParsedReport(format="osv", scanner="osv-scanner")
    source = source_label("osv", report.scanner, report.scanner_version)
    for result in results:
        result.require_obj()
        report.artifact_name = (
            report.artifact_name or result.child("source").child("path").opt_str()
        )
        for entry in result.child("packages").items():
            package = entry.child("package").require_obj()
            for vuln in entry.child("vulnerabilities").items():
                report.findings.append(_finding(vuln, package, source))
    return report
