"""Trivy JSON reports (``trivy image|fs|repo --format json``, ``SchemaVersion`` 2)."""

from __future__ import annotations

from engine.inputs.scans.access import Node
from engine.inputs.scans.normalize import (
    ParsedReport,
    RawFinding,
    severity_from_word,
    source_label,
    split_versions,
)

_SUPPRESSING_STATUSES = frozenset({"not_affected", "fixed", "ignored", "false_positive"})
"""``ExperimentalModifiedFindings[].Status`` values that mean Trivy hid the finding."""


_SCORE_KEYS = (("V3Score", "V3Vector"), ("V40Score", "V40Vector"), ("V2Score", "V2Vector"))


def _cvss(vuln: Node) -> tuple[float | None, str | None]:
    """Score and vector from the ``SeveritySource`` vendor, else NVD, else the first vendor."""
    cvss = vuln.child("CVSS")
    vendors = cvss.keys()
    if not vendors:
        return None, None
    preferred = vuln.child("SeveritySource").opt_str()
    vendor = preferred if preferred in vendors else ("nvd" if "nvd" in vendors else vendors[0])
    entry = cvss.child(vendor)
    for score_key, vector_key in _SCORE_KEYS:
        score = entry.child(score_key).opt_float()
        if score is not None:
            return score, entry.child(vector_key).opt_str()
    return None, None


def _finding(vuln: Node, result_type: str | None, source: str) -> RawFinding:
    vuln.require_obj()
    score, vector = _cvss(vuln)
    finding = RawFinding(
        id=vuln.child("VulnerabilityID").req_str(),
        source=source,
        aliases=vuln.child("VendorIDs").str_items(),
        severity=severity_from_word(vuln.child("Severity").opt_str()),
        cvss_score=score,
        cvss_vector=vector,
        package_name=vuln.child("PkgName").opt_str(),
        purl=vuln.child("PkgIdentifier").child("PURL").opt_str(),
        ecosystem=result_type,
        installed_version=vuln.child("InstalledVersion").opt_str(),
        fixed_versions=split_versions(vuln.child("FixedVersion").opt_str()),
    )
    finding.fill_package_from_purl()
    return finding


def parse_trivy(root: Node) -> ParsedReport:
    """Read a Trivy JSON report; findings Trivy moved to ``ExperimentalModifiedFindings``
    (``--show-suppressed``) come back suppressed, attributed to Trivy's VEX/ignore source."""
    root.require_obj()
    schema = root.child("SchemaVersion")
    if schema.value != 2:
        schema.fail(f"unsupported Trivy SchemaVersion {schema.value!r} (expected 2)")
    metadata = root.child("Metadata")
    report = ParsedReport(
        format="trivy",
        scanner="trivy",
        scanner_version=root.child("Trivy").child("Version").opt_str(),
        scanned_at=root.child("CreatedAt").opt_str(),
        artifact_name=root.child("ArtifactName").opt_str(),
    )
    # NOTE: RepoDigests name the manifest digest a registry serves; ImageID is the config
    # digest. Either one equal to the request's digest ties the scan to the artifact.
    for repo_digest in metadata.child("RepoDigests").str_items():
        report.add_digest(repo_digest)
    report.add_digest(metadata.child("ImageID").opt_str())
    source = source_label("trivy", report.scanner, report.scanner_version)
    for result in root.child("Results").items():
        result.require_obj()
        result_type = result.child("Type").opt_str()
        for vuln in result.child("Vulnerabilities").items():
            report.findings.append(_finding(vuln, result_type, source))
        for modified in result.child("ExperimentalModifiedFindings").items():
            if modified.child("Type").opt_str() != "vulnerability":
                continue
            finding = _finding(modified.child("Finding"), result_type, source)
            status = modified.child("Status").opt_str()
            finding.vex_status = status
            if status in _SUPPRESSING_STATUSES:
                finding.suppressed = True
                origin = modified.child("Source").opt_str() or "unknown source"
                finding.suppressed_by = f"trivy:{origin}"
            report.findings.append(finding)
    return report
