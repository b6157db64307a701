"""Format variants the corpus lacks: suppressed findings, digests, 1.5+ tool lists, edge values.

Each report here is a corpus report with a documented edit, or (for Trivy's
``ExperimentalModifiedFindings``) the shape of trivy's own ``pkg/types`` round-trip test.
"""

from __future__ import annotations

from engine.errors import InputError
from tests.inputs.test_scans_support import (
    ALPINE39,
    ALPINE310_SARIF,
    GRYPE,
    NPM_CDX,
    OTHER_DIGEST,
    by_key,
    load,
    section,
    zero_counts,
)

IMAGE = "sha256:" + "ab" * 32


def test_trivy_modified_findings_come_back_suppressed() -> None:
    report = load(ALPINE39)
    report["Results"][0]["ExperimentalModifiedFindings"] = [
        {
            "Type": "vulnerability",
            "Status": "ignored",
            "Statement": "Not applicable",
            "Source": ".trivyignore",
            "Finding": {
                "VulnerabilityID": "CVE-2024-2222",
                "PkgName": "lib2",
                "InstalledVersion": "2.0",
                "Severity": "HIGH",
            },
        },
        {"Type": "license", "Status": "ignored", "Finding": {"Name": "GPL-3.0"}},
    ]
    sec = section(report)
    lib2 = by_key(sec)[("CVE-2024-2222", "lib2")]
    assert lib2.suppressed and lib2.suppressed_by == "trivy:.trivyignore"
    assert lib2.vex_status == "ignored"
    assert sec.counts == zero_counts(CRITICAL=2, MEDIUM=4)
    assert sec.reports[0].counts == zero_counts(CRITICAL=2, MEDIUM=4)


def test_trivy_repo_digest_matches() -> None:
    report = load(ALPINE39)
    report["Metadata"]["RepoDigests"] = [f"ghcr.io/aquasecurity/trivy-test-images@{IMAGE}"]
    (fact,) = section(report, digest=IMAGE).reports
    assert fact.artifact_matches is True and fact.artifact_digest == IMAGE
    assert IMAGE in fact.artifact_digests


def test_grype_ignored_matches_and_db_metadata() -> None:
    report = load(GRYPE)
    ignored = report["matches"].pop(1)  # CVE-1999-0002, Critical
    ignored["appliedIgnoreRules"] = [
        {
            "vulnerability": "CVE-1999-0002",
            "reason": "vex",
            "vex-status": "not_affected",
            "vex-justification": "vulnerable_code_not_present",
        }
    ]
    report["ignoredMatches"] = [ignored]
    report["descriptor"]["db"] = {"status": {"schemaVersion": "v6.0.2", "built": "2025-01-01"}}
    sec = section(report)
    crit = by_key(sec)[("CVE-1999-0002", "package-2")]
    assert crit.suppressed and crit.suppressed_by == "grype:vex"
    assert (crit.vex_status, crit.vex_justification) == (
        "not_affected",
        "vulnerable_code_not_present",
    )
    assert sec.counts == zero_counts(LOW=1)
    assert sec.reports[0].db == {"schemaVersion": "v6.0.2", "built": "2025-01-01"}


def test_cyclonedx_tools_object_and_subject_digests() -> None:
    report = load(NPM_CDX)
    report["specVersion"] = "1.5"
    report["metadata"]["tools"] = {"components": [{"name": "grype", "version": "0.87.0"}]}
    report["metadata"]["component"]["hashes"] = [{"alg": "SHA-256", "content": "ab" * 32}]
    (fact,) = section(report, digest=IMAGE).reports
    assert (fact.scanner, fact.scanner_version) == ("grype", "0.87.0")
    assert fact.artifact_matches is True
    report["metadata"]["component"]["hashes"] = []
    report["metadata"]["component"]["purl"] = f"pkg:oci/app@sha256%3A{'cd' * 32}"
    (fact,) = section(report, digest=IMAGE).reports
    assert fact.artifact_matches is False
    assert fact.artifact_digests == ["sha256:" + "cd" * 32]


def test_cyclonedx_unresolvable_ref_keeps_the_finding() -> None:
    report = load(NPM_CDX)
    report["vulnerabilities"][0]["affects"] = [{"ref": "urn:cdx:other-bom/1#pkg"}]
    (fact,) = section(report).findings
    assert fact.id == "CVE-2019-11358" and fact.package_name is None
    assert fact.severity == "MEDIUM" and not fact.suppressed


def test_sarif_long_message_line_is_linear() -> None:
    # Regression: a lazy ".*?" followed by " *$" backtracked quadratically on long lines.
    report = load(ALPINE310_SARIF)
    result = report["runs"][0]["results"][0]
    result["message"]["text"] = "Package:" + " " * 200_000 + "x\nInstalled Version: 1"
    found = by_key(section(report))
    assert ("CVE-2019-1549", "x") in found


def test_huge_integers_are_rejected() -> None:
    report = load(ALPINE39)
    report["Metadata"]["Size"] = 10**5000
    try:
        section(report, digest=OTHER_DIGEST)
    except InputError as error:
        assert error.errors[0].loc == "evidence.scans[0].report.Metadata.Size"
        assert "integer out of range" in error.message
    else:
        raise AssertionError("a 5000-digit integer was accepted")
