"""CycloneDX 1.4-1.7 BOMs and VEX documents with a ``vulnerabilities`` section.

Each ``vulnerabilities[j]`` yields one finding per ``affects[]`` reference, resolved to a
component (``bom-ref``) of the BOM, or read as a purl when the reference is one. Severity
is the highest of the ``ratings``; the score is the highest CVSS v3/v4 score (v2 only if no
other). ``analysis.state`` ``not_affected``, ``false_positive`` or ``resolved`` suppress the
finding; any state is kept as ``vex_status``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from engine.inputs.scans.access import Node
from engine.inputs.scans.normalize import (
    ParsedReport,
    RawFinding,
    max_severity,
    parse_purl,
    severity_from_score,
    severity_from_word,
    source_label,
    split_versions,
)
from engine.models.vulnerabilities import Severity

SUPPORTED_SPEC_VERSIONS: Final = frozenset({"1.4", "1.5", "1.6", "1.7"})
SUPPRESSING_STATES: Final = frozenset(
    {"not_affected", "false_positive", "resolved", "resolved_with_pedigree"}
)
_TRIVY_RECOMMENDATION: Final = re.compile(r"^Upgrade (\S+) to version (.+)$")


@dataclass(frozen=True)
class _Component:
    name: str | None
    version: str | None
    purl: str | None


def _component(node: Node) -> _Component:
    name = node.child("name").opt_str()
    group = node.child("group").opt_str()
    if name and group:
        name = f"{group}/{name}"
    return _Component(name, node.child("version").opt_str(), node.child("purl").opt_str())


def _index_components(root: Node) -> dict[str, _Component]:
    """``bom-ref`` -> component, over ``metadata.component`` and nested ``components``."""
    index: dict[str, _Component] = {}
    pending = [root.child("metadata").child("component"), *root.child("components").items()]
    while pending:
        node = pending.pop()
        if not node.present:
            continue
        node.require_obj()
        ref = node.child("bom-ref").opt_str()
        if ref is not None:
            index.setdefault(ref, _component(node))
        pending.extend(node.child("components").items())
    return index


def _tools(metadata: Node) -> list[Node]:
    tools = metadata.child("tools")
    if tools.is_obj():  # 1.5+: {"components": [...], "services": [...]}
        return [*tools.child("components").items(), *tools.child("services").items()]
    return tools.items()  # 1.4: [{"vendor", "name", "version"}]


def _ratings(vuln: Node) -> tuple[Severity, float | None, str | None]:
    severity: Severity = "UNKNOWN"
    best: tuple[int, float, str | None] | None = None
    for rating in vuln.child("ratings").items():
        score = rating.child("score").opt_float()
        word = rating.child("severity").opt_str()
        rated = severity_from_word(word) if word else severity_from_score(score)
        severity = max_severity(severity, rated)
        if score is None:
            continue
        method = (rating.child("method").opt_str() or "").upper()
        rank = 1 if method.startswith("CVSSV3") or method.startswith("CVSSV4") else 0
        candidate = (rank, score, rating.child("vector").opt_str())
        if best is None or candidate[:2] > best[:2]:
            best = candidate
    return severity, (best[1] if best else None), (best[2] if best else None)


def _resolve(ref: str | None, components: dict[str, _Component]) -> _Component:
    if ref is None:
        return _Component(None, None, None)
    if ref in components:
        return components[ref]
    parsed = parse_purl(ref)
    if parsed is not None:
        return _Component(parsed.name, parsed.version, ref)
    return _Component(None, None, None)  # e.g. a BOM-Link into another BOM


def _names_package(recommended: str, name: str | None) -> bool:
    """Does Trivy's ``Upgrade <name> to version <v>`` name this component?"""
    if name is None:
        return False
    recommended = recommended.replace(":", "/")
    return recommended in (name, name.rsplit("/", 1)[-1])


def _vulnerability(
    vuln: Node, index: int, components: dict[str, _Component], report: ParsedReport, label: str
) -> None:
    vuln.require_obj()
    vuln_id = vuln.child("id").req_str()
    aliases = [ref.child("id").req_str() for ref in vuln.child("references").items()]
    severity, score, vector = _ratings(vuln)
    analysis = vuln.child("analysis")
    state = analysis.child("state").opt_str()
    justification = analysis.child("justification").opt_str()
    recommendation = _TRIVY_RECOMMENDATION.match(vuln.child("recommendation").opt_str() or "")
    affects: list[Node | None] = [*vuln.child("affects").items()] or [None]
    source = source_label("cyclonedx", report.scanner, report.scanner_version)
    for affected in affects:
        ref = affected.child("ref").opt_str() if affected is not None else None
        component = _resolve(ref, components)
        fixed: list[str] = []
        if recommendation and _names_package(recommendation.group(1), component.name):
            fixed = split_versions(recommendation.group(2))
        finding = RawFinding(
            id=vuln_id,
            source=source,
            aliases=aliases,
            severity=severity,
            cvss_score=score,
            cvss_vector=vector,
            package_name=component.name,
            purl=component.purl,
            installed_version=component.version,
            fixed_versions=fixed,
            vex_status=state,
            vex_justification=justification,
        )
        if state in SUPPRESSING_STATES:
            finding.suppressed = True
            finding.suppressed_by = f"cyclonedx:{label}#vulnerabilities[{index}]"
        finding.fill_package_from_purl()
        report.findings.append(finding)


def parse_cyclonedx(root: Node) -> ParsedReport:
    """Read the vulnerabilities of a CycloneDX JSON BOM (spec 1.4 to 1.7)."""
    root.require_obj()
    if root.child("bomFormat").opt_str() != "CycloneDX":
        root.child("bomFormat").fail("expected 'CycloneDX'")
    spec = root.child("specVersion")
    if spec.opt_str() not in SUPPORTED_SPEC_VERSIONS:
        spec.fail(f"unsupported CycloneDX specVersion {spec.value!r} (supported: 1.4 to 1.7)")
    metadata = root.child("metadata")
    report = ParsedReport(format="cyclonedx", scanned_at=metadata.child("timestamp").opt_str())
    tools = _tools(metadata)
    if tools:
        report.scanner = tools[0].child("name").opt_str()
        report.scanner_version = tools[0].child("version").opt_str()
    subject = metadata.child("component")
    if subject.present:
        report.artifact_name = subject.child("name").opt_str()
        for digest in subject.child("hashes").items():
            if (digest.child("alg").opt_str() or "").upper() == "SHA-256":
                report.add_digest(f"sha256:{digest.child('content').opt_str() or ''}")
        report.add_digest(subject.child("purl").opt_str())
    components = _index_components(root)
    for index, vuln in enumerate(root.child("vulnerabilities").items()):
        _vulnerability(vuln, index, components, report, root.report)
    return report
