"""``format: auto``: recognise a report by the members its tool always writes."""

from __future__ import annotations

from engine.inputs.scans.access import Node
from engine.models.request import ScanFormat


def _is_openvex(report: dict[str, object]) -> bool:
    context = report.get("@context")
    return isinstance(context, str) and context.startswith("https://openvex.dev/ns")


def _is_sarif(report: dict[str, object]) -> bool:
    schema = report.get("$schema")
    return "runs" in report and (
        report.get("version") == "2.1.0" or (isinstance(schema, str) and "sarif" in schema.lower())
    )


def _is_trivy(report: dict[str, object]) -> bool:
    return "SchemaVersion" in report and ("Results" in report or "ArtifactName" in report)


def _is_grype(report: dict[str, object]) -> bool:
    return "matches" in report and ("descriptor" in report or "source" in report)


def _is_osv(report: dict[str, object]) -> bool:
    results = report.get("results")
    if not isinstance(results, list):
        return False
    first = results[0] if results else None
    return first is None or (isinstance(first, dict) and ("packages" in first or "source" in first))


_DETECTORS = (
    (ScanFormat.OPENVEX, _is_openvex),
    (ScanFormat.CYCLONEDX, lambda r: r.get("bomFormat") == "CycloneDX"),
    (ScanFormat.SARIF, _is_sarif),
    (ScanFormat.TRIVY, _is_trivy),
    (ScanFormat.GRYPE, _is_grype),
    (ScanFormat.OSV, _is_osv),
)


def sniff(report: dict[str, object]) -> ScanFormat | None:
    """The format ``report`` looks like, or ``None``."""
    for fmt, looks_like in _DETECTORS:
        if looks_like(report):
            return fmt
    return None


def resolve_format(declared: ScanFormat, root: Node) -> ScanFormat:
    """The format to parse with: the sniffed one for ``auto``; a declared format must not
    contradict what the report evidently is."""
    try:
        declared = ScanFormat(declared)
    except ValueError:
        root.fail(f"unknown format {declared!r}")
    report = root.value
    if not isinstance(report, dict):
        root.fail("expected an object")
    found = sniff(report)
    if declared is ScanFormat.AUTO:
        if found is None:
            root.fail(
                "unrecognized report format (expected Trivy JSON, Grype JSON, SARIF 2.1.0, "
                "CycloneDX, OSV-Scanner JSON or OpenVEX)"
            )
        return found
    if found is not None and found is not declared:
        root.fail(f"declared format {declared.value!r} but the report looks like {found.value!r}")
    return declared
