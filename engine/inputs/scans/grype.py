"""Grype JSON reports (``grype -o json``: ``matches``, ``source``, ``distro``, ``descriptor``)."""

from __future__ import annotations

from engine.inputs.scans.access import Node
from engine.inputs.scans.normalize import (
    ParsedReport,
    RawFinding,
    severity_from_word,
    source_label,
)

_DB_KEYS = ("built", "schemaVersion", "checksum", "from", "valid")
"""Database metadata copied from ``descriptor.db`` (older Grype) or ``descriptor.db.status``."""


def _cvss(vuln: Node) -> tuple[float | None, str | None]:
    """The highest base score among ``vulnerability.cvss[]`` (v3/v4 before v2) with its vector."""
    best: tuple[int, float, str | None] | None = None
    for entry in vuln.child("cvss").items():
        score = entry.child("metrics").child("baseScore").opt_float()
        if score is None:
            continue
        version = entry.child("version").opt_scalar_text() or ""
        rank = 0 if version.startswith("2") else 1
        candidate = (rank, score, entry.child("vector").opt_str())
        if best is None or candidate[:2] > best[:2]:
            best = candidate
    return (best[1], best[2]) if best else (None, None)


def _finding(match: Node, source: str) -> RawFinding:
    match.require_obj()
    vuln = match.child("vulnerability").require_obj()
    artifact = match.child("artifact").require_obj()
    score, vector = _cvss(vuln)
    aliases = [
        related.child("id").req_str() for related in match.child("relatedVulnerabilities").items()
    ]
    finding = RawFinding(
        id=vuln.child("id").req_str(),
        source=source,
        aliases=aliases,
        severity=severity_from_word(vuln.child("severity").opt_str()),
        cvss_score=score,
        cvss_vector=vector,
        package_name=artifact.child("name").opt_str(),
        purl=artifact.child("purl").opt_str(),
        ecosystem=artifact.child("type").opt_str(),
        installed_version=artifact.child("version").opt_str(),
        fixed_versions=vuln.child("fix").child("versions").str_items(),
    )
    finding.fill_package_from_purl()
    return finding


def _target(report: ParsedReport, source: Node) -> None:
    target = source.child("target")
    if isinstance(target.value, str):  # directory / file sources name a path
        report.artifact_name = target.opt_str()
        return
    report.artifact_name = target.child("userInput").opt_str() or target.child("path").opt_str()
    report.add_digest(target.child("manifestDigest").opt_str())
    for repo_digest in target.child("repoDigests").str_items():
        report.add_digest(repo_digest)
    report.add_digest(target.child("imageID").opt_str())


def parse_grype(root: Node) -> ParsedReport:
    """Read a Grype JSON report; ``ignoredMatches`` come back suppressed by the ignore rule."""
    root.require_obj()
    root.child("matches").require_items()
    descriptor = root.child("descriptor")
    report = ParsedReport(
        format="grype",
        scanner=descriptor.child("name").opt_str() or "grype",
        scanner_version=descriptor.child("version").opt_str(),
        scanned_at=descriptor.child("timestamp").opt_str(),
    )
    db = descriptor.child("db")
    for holder in (db, db.child("status")):
        if not holder.is_obj():
            continue
        for key in _DB_KEYS:
            text = holder.child(key).opt_scalar_text()
            if text is not None:
                report.db[key] = text
    _target(report, root.child("source"))
    source = source_label("grype", report.scanner, report.scanner_version)
    for match in root.child("matches").items():
        report.findings.append(_finding(match, source))
    for ignored in root.child("ignoredMatches").items():
        finding = _finding(ignored, source)
        rules = ignored.child("appliedIgnoreRules").items()
        finding.suppressed = True
        reason = "ignore-rule"
        for rule in rules:
            finding.vex_status = finding.vex_status or rule.child("vex-status").opt_str()
            finding.vex_justification = (
                finding.vex_justification or rule.child("vex-justification").opt_str()
            )
            reason = rule.child("reason").opt_str() or reason
        finding.suppressed_by = f"grype:{reason}"
        report.findings.append(finding)
    return report
