"""Malformed, truncated, wrong-type and over-limit reports are InputErrors naming the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.errors import InputError
from engine.inputs.scans import ScanLimits, build_vulnerabilities_section, load_scan_file
from engine.models.request import ScanEvidence, ScanFormat
from tests.inputs.test_scans_support import (
    ALPINE39,
    ALPINE310_SARIF,
    ASSETS,
    CISA_VEX,
    GOMOD_OPENVEX,
    GRYPE,
    NPM_CDX,
    OSV,
    OTHER_DIGEST,
    load,
)


def _fails(
    *reports: dict[str, Any],
    fmt: ScanFormat = ScanFormat.AUTO,
    limits: ScanLimits | None = None,
) -> InputError:
    scans = [ScanEvidence(format=fmt, report=r) for r in reports]
    with pytest.raises(InputError) as caught:
        build_vulnerabilities_section(scans, artifact_digest=OTHER_DIGEST, limits=limits)
    error = caught.value
    assert error.code == "invalid_input"
    assert len(error.errors) == 1
    assert error.message.startswith(f"evidence.scans[{len(reports) - 1}]")
    return error


def _loc(error: InputError) -> str:
    return error.errors[0].loc


def test_unknown_format() -> None:
    error = _fails({"hello": "world"})
    assert _loc(error) == "evidence.scans[0].report"
    assert "unrecognized report format" in error.message


def test_declared_format_contradicting_the_report() -> None:
    error = _fails(load(ALPINE39), fmt=ScanFormat.GRYPE)
    assert "declared format 'grype' but the report looks like 'trivy'" in error.message


def test_error_names_the_failing_report_among_several() -> None:
    error = _fails(load(ALPINE39), {"bomFormat": "CycloneDX", "specVersion": "1.2"})
    assert _loc(error) == "evidence.scans[1].report.specVersion"
    assert "unsupported CycloneDX specVersion '1.2'" in error.message


def _trivy_vuln(index: int = 2) -> tuple[dict[str, Any], dict[str, Any]]:
    report = load(ALPINE39)
    return report, report["Results"][0]["Vulnerabilities"][index]


VULN_LOC = "evidence.scans[0].report.Results[0].Vulnerabilities[2]"


def test_trivy_missing_vulnerability_id() -> None:
    report, vuln = _trivy_vuln()
    del vuln["VulnerabilityID"]
    error = _fails(report)
    assert _loc(error) == f"{VULN_LOC}.VulnerabilityID"
    assert "is required" in error.message


@pytest.mark.parametrize(
    ("field", "value", "loc_suffix", "problem"),
    [
        ("Severity", 5, ".Severity", "expected a string, got a number"),
        ("FixedVersion", ["1.0"], ".FixedVersion", "expected a string, got an array"),
        ("CVSS", "high", ".CVSS", "expected an object, got a string"),
        ("CVSS", {"nvd": {"V3Score": "9.8"}}, ".CVSS.nvd.V3Score", "expected a number"),
        ("CVSS", {"nvd": {"V3Score": True}}, ".CVSS.nvd.V3Score", "got a boolean"),
        ("PkgIdentifier", [], ".PkgIdentifier", "expected an object, got an array"),
        ("VendorIDs", "DSA-1", ".VendorIDs", "expected an array"),
    ],
)
def test_trivy_wrong_types(field: str, value: object, loc_suffix: str, problem: str) -> None:
    report, vuln = _trivy_vuln()
    vuln[field] = value
    error = _fails(report)
    assert _loc(error) == VULN_LOC + loc_suffix
    assert problem in error.message


def test_trivy_wrong_results_type_and_schema() -> None:
    report = load(ALPINE39)
    report["Results"] = {"Vulnerabilities": []}
    assert _loc(_fails(report)) == "evidence.scans[0].report.Results"
    report = load(ALPINE39)
    report["SchemaVersion"] = 1
    assert "unsupported Trivy SchemaVersion 1" in _fails(report).message


@pytest.mark.parametrize(
    ("name", "mutate", "loc"),
    [
        (GRYPE, lambda r: r["matches"][1].pop("vulnerability"), "matches[1].vulnerability"),
        (
            GRYPE,
            lambda r: r["matches"][0]["vulnerability"]["fix"].update(versions="1.2"),
            "matches[0].vulnerability.fix.versions",
        ),
        (ALPINE310_SARIF, lambda r: r.update(runs={}), "runs"),
        (
            ALPINE310_SARIF,
            lambda r: r["runs"][0]["results"][1].update(ruleId=7, ruleIndex=None),
            "runs[0].results[1].ruleId",
        ),
        (
            ALPINE310_SARIF,
            lambda r: r["runs"][0]["tool"]["driver"]["rules"][0]["properties"].update(
                {"security-severity": "very"}, tags=[]
            ),
            "runs[0].tool.driver.rules[0].properties.security-severity",
        ),
        (
            NPM_CDX,
            lambda r: r["vulnerabilities"][0]["ratings"][5].update(score="4.3"),
            "vulnerabilities[0].ratings[5].score",
        ),
        (
            NPM_CDX,
            lambda r: r["vulnerabilities"][0].update(affects={"ref": "x"}),
            "vulnerabilities[0].affects",
        ),
        (
            CISA_VEX,
            lambda r: r["vulnerabilities"][0]["analysis"].update(state=["not_affected"]),
            "vulnerabilities[0].analysis.state",
        ),
        (
            OSV,
            lambda r: r["results"][1]["packages"][0]["vulnerabilities"][0].update(aliases="CVE-1"),
            "results[1].packages[0].vulnerabilities[0].aliases",
        ),
        (
            OSV,
            lambda r: r["results"][0]["packages"][0].update(package=None),
            "results[0].packages[0].package",
        ),
        (
            GOMOD_OPENVEX,
            lambda r: r["statements"][0].update(status="maybe"),
            "statements[0].status",
        ),
        (GOMOD_OPENVEX, lambda r: r["statements"][0].pop("products"), "statements[0].products"),
        (GOMOD_OPENVEX, lambda r: r.update(timestamp="yesterday"), "timestamp"),
        (
            GOMOD_OPENVEX,
            lambda r: r["statements"][0].update(vulnerability={}),
            "statements[0].vulnerability",
        ),
    ],
)
def test_wrong_shapes_in_each_format(name: str, mutate: Any, loc: str) -> None:
    report = load(name)
    mutate(report)
    assert _loc(_fails(report)) == f"evidence.scans[0].report.{loc}"


def test_over_size_limit() -> None:
    report = load(ALPINE39)
    size = len(json.dumps(report, separators=(",", ":"), ensure_ascii=False).encode())
    build_vulnerabilities_section(  # exactly at the limit passes
        [ScanEvidence(report=report)],
        artifact_digest=OTHER_DIGEST,
        limits=ScanLimits(max_report_bytes=size),
    )
    error = _fails(report, limits=ScanLimits(max_report_bytes=size - 1))
    assert f"report is {size} bytes" in error.message


def test_over_findings_limit() -> None:
    error = _fails(load(ALPINE39), limits=ScanLimits(max_findings=5))  # 6 raw findings
    assert "more than 5 findings" in error.message


def test_nesting_depth() -> None:
    report = load(ALPINE39)
    deep: Any = "x"
    for _ in range(70):
        deep = [deep]
    report["Metadata"]["Deep"] = deep
    error = _fails(report)
    assert "nesting deeper than 64" in error.message
    assert _loc(error).startswith("evidence.scans[0].report.Metadata.Deep[0][0]")
    report["Metadata"]["Deep"] = [[["x"]]]
    _fails(report, limits=ScanLimits(max_depth=4))


@pytest.mark.parametrize(
    ("value", "problem"),
    [(float("nan"), "not finite"), (float("inf"), "not finite"), ({1, 2}, "not a JSON value")],
)
def test_non_json_values(value: object, problem: str) -> None:
    report = load(ALPINE39)
    report["Metadata"]["Odd"] = value
    error = _fails(report)
    assert _loc(error) == "evidence.scans[0].report.Metadata.Odd"
    assert problem in error.message


def test_non_string_key() -> None:
    report = load(ALPINE39)
    report["Metadata"][3] = "x"
    assert "object key not a string" in _fails(report).message


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_depth"):
        ScanLimits(max_depth=0)


# -- load_scan_file -----------------------------------------------------------------------


def test_load_scan_file_reads_a_corpus_report() -> None:
    assert load_scan_file(ASSETS / ALPINE39) == load(ALPINE39)


def test_load_scan_file_truncated(tmp_path: Path) -> None:
    data = (ASSETS / ALPINE39).read_bytes()
    path = tmp_path / "truncated.json"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"truncated\.json: invalid JSON: .* at line \d+"):
        load_scan_file(path)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"[1, 2]", "expected a JSON object, got an array"),
        (b'{"a": NaN}', "invalid JSON"),
        (b'{"a": "\xff"}', "not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "invalid JSON"),
        (b'{"a":' * 100 + b"1" + b"}" * 100, "nesting deeper than 64"),
        (b"", "invalid JSON"),
    ],
)
def test_load_scan_file_bad_content(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "scan.json"
    path.write_bytes(content)
    with pytest.raises(InputError) as caught:
        load_scan_file(path)
    assert problem in caught.value.message
    assert str(path) in caught.value.message


def test_load_scan_file_too_large_and_missing(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="more than the limit of 100"):
        load_scan_file(ASSETS / ALPINE39, limits=ScanLimits(max_report_bytes=100))
    with pytest.raises(InputError, match="cannot read"):
        load_scan_file(tmp_path / "absent.json")
