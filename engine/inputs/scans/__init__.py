"""Scanner reports and VEX documents -> the ``vulnerabilities`` section of the input.

Supported: Trivy JSON (SchemaVersion 2), Grype JSON, SARIF 2.1.0, CycloneDX 1.4-1.7,
OSV-Scanner JSON, and OpenVEX (applied as suppressions to the findings of the others).

For each request:

1. every report is checked against :class:`ScanLimits` (JSON types, depth, size);
2. its format is resolved (``auto`` sniffs it; a declared format must not contradict it);
3. it is parsed into raw findings and a :class:`ScanReportFact`;
4. raw findings are de-duplicated across reports, scanners and aliases;
5. OpenVEX statements are applied to the merged findings;
6. unsuppressed findings are counted by severity.

Any malformed report raises :class:`~engine.errors.InputError` naming ``evidence.scans[i]``
and the field; no other exception escapes for bad input.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import assert_never

from engine.inputs.scans.access import Node, input_error
from engine.inputs.scans.cyclonedx import parse_cyclonedx
from engine.inputs.scans.dedup import count_by_severity, merge_findings, sort_facts
from engine.inputs.scans.detect import resolve_format
from engine.inputs.scans.grype import parse_grype
from engine.inputs.scans.limits import ScanLimits, check_report, load_scan_file
from engine.inputs.scans.normalize import ParsedReport, parse_purl
from engine.inputs.scans.openvex import VexIndex, VexStatement, parse_openvex
from engine.inputs.scans.osv import parse_osv
from engine.inputs.scans.sarif import parse_sarif
from engine.inputs.scans.trivy import parse_trivy
from engine.models.common import SectionStatus
from engine.models.raw import object_value
from engine.models.request import ScanEvidence, ScanFormat
from engine.models.vulnerabilities import ScanReportFact, VulnerabilitiesSection

__all__ = ["ScanLimits", "build_vulnerabilities_section", "load_scan_file"]


def _parse(fmt: ScanFormat, root: Node, index: int) -> tuple[ParsedReport, list[VexStatement]]:
    if fmt is ScanFormat.TRIVY:
        return parse_trivy(root), []
    if fmt is ScanFormat.GRYPE:
        return parse_grype(root), []
    if fmt is ScanFormat.SARIF:
        return parse_sarif(root), []
    if fmt is ScanFormat.CYCLONEDX:
        return parse_cyclonedx(root), []
    if fmt is ScanFormat.OSV:
        return parse_osv(root), []
    if fmt is ScanFormat.OPENVEX:
        return parse_openvex(root, doc_index=index)
    if fmt is ScanFormat.AUTO:  # resolve_format never returns AUTO
        root.fail("format could not be resolved")
    assert_never(fmt)


def _report_fact(index: int, parsed: ParsedReport, artifact_digest: str) -> ScanReportFact:
    wanted = artifact_digest.strip().lower()
    matches: bool | None = None
    named: str | None = None
    if parsed.artifact_digests:
        matches = wanted in parsed.artifact_digests
        named = wanted if matches else parsed.artifact_digests[0]
    own = sort_facts([m.to_fact() for m in merge_findings(parsed.findings)])
    return ScanReportFact(
        index=index,
        format=parsed.format,
        scanner=parsed.scanner,
        scanner_version=parsed.scanner_version,
        scanned_at=parsed.scanned_at,
        artifact_name=parsed.artifact_name,
        artifact_digest=named,
        artifact_digests=parsed.artifact_digests,
        artifact_matches=matches,
        db=parsed.db,
        counts=count_by_severity(f for f in own if not f.suppressed),
    )


def build_vulnerabilities_section(
    scans: Sequence[ScanEvidence],
    *,
    artifact_digest: str,
    limits: ScanLimits | None = None,
) -> VulnerabilitiesSection:
    """Verify, parse, de-duplicate and VEX-filter ``evidence.scans`` into facts.

    No scans: ``status="missing"``. Only OpenVEX documents (no scan report): also
    ``missing`` (a VEX is not a scan). Otherwise ``ok``; ``counts`` are unsuppressed findings.
    """
    limits = limits or ScanLimits()
    if not scans:
        return VulnerabilitiesSection(
            status=SectionStatus.MISSING, message="no scan reports supplied"
        )
    reports: list[ScanReportFact] = []
    raw_total = 0
    raw = []
    statements: list[VexStatement] = []
    for index, scan in enumerate(scans):
        label = f"evidence.scans[{index}]"
        # 1. Limits, 2. format, 3. parse.
        report = object_value(scan.report)
        check_report(report, report_label=label, limits=limits)
        root = Node.root(report, label)
        parsed, found = _parse(resolve_format(scan.format, root), root, index)
        statements.extend(found)
        raw_total += len(parsed.findings)
        if raw_total > limits.max_findings:
            raise input_error(
                label, root.loc, f"more than {limits.max_findings} findings in this request"
            )
        raw.extend(parsed.findings)
        reports.append(_report_fact(index, parsed, artifact_digest))
    # 4. De-duplicate.
    merged = merge_findings(raw)
    # 5. OpenVEX: the latest statement covering a finding decides.
    vex_index = VexIndex(statements)
    for finding in merged:
        if finding.suppressed or not vex_index:
            continue
        decision = vex_index.select({i.upper() for i in finding.ids}, parse_purl(finding.purl))
        if decision is None:
            continue
        finding.vex_status, finding.vex_justification = decision.status, decision.justification
        if decision.suppresses:
            finding.suppressed, finding.suppressed_by = True, decision.label
    facts = sort_facts([m.to_fact() for m in merged])
    # 6. Count.
    counts = count_by_severity(f for f in facts if not f.suppressed)
    scanned = any(r.format != ScanFormat.OPENVEX.value for r in reports)
    return VulnerabilitiesSection(
        status=SectionStatus.OK if scanned else SectionStatus.MISSING,
        message=None if scanned else "only VEX documents supplied, no scan report",
        reports=reports,
        findings=facts,
        counts=counts,
    )
