"""Each real scanner output gives the findings counted by hand from the JSON."""

from __future__ import annotations

import pytest

from engine.inputs.scans import build_vulnerabilities_section
from engine.inputs.scans.detect import sniff
from engine.models.common import SectionStatus
from engine.models.request import ScanEvidence, ScanFormat
from tests.inputs.test_scans_support import (
    ALL_CORPUS,
    ALPINE39,
    ALPINE310_SARIF,
    CISA_VEX,
    GOMOD_VEX_OUTPUT,
    GRYPE,
    NPM_CDX,
    OSV,
    TRIVY_OPENVEX,
    by_key,
    load,
    section,
    zero_counts,
)

ALPINE39_IMAGE_ID = "sha256:055936d3920576da37aa9bc460d70c5f212028bda1c08c0879aedf03d7a66ea1"
GRYPE_MANIFEST = "sha256:ca738abb87a8d58f112d3400ebb079b61ceae7dc290beb34bda735be4b1941d5"


@pytest.mark.parametrize(("name", "fmt"), sorted(ALL_CORPUS.items()))
def test_auto_detects_every_corpus_format(name: str, fmt: ScanFormat) -> None:
    assert sniff(load(name)) is fmt
    declared = build_vulnerabilities_section(
        [ScanEvidence(format=fmt, report=load(name))], artifact_digest=ALPINE39_IMAGE_ID
    )
    assert [r.format for r in declared.reports] == [fmt.value]


def test_no_scans_is_missing() -> None:
    sec = build_vulnerabilities_section([], artifact_digest=ALPINE39_IMAGE_ID)
    assert sec.status is SectionStatus.MISSING
    assert sec.findings == [] and sec.reports == []


def test_trivy_alpine39() -> None:
    sec = section(ALPINE39, digest=ALPINE39_IMAGE_ID)
    assert sec.status is SectionStatus.OK
    assert sec.counts == zero_counts(CRITICAL=2, MEDIUM=4)
    found = by_key(sec)
    assert sorted(found) == [
        ("CVE-2019-14697", "musl"),
        ("CVE-2019-14697", "musl-utils"),
        ("CVE-2019-1549", "libcrypto1.1"),
        ("CVE-2019-1549", "libssl1.1"),
        ("CVE-2019-1551", "libcrypto1.1"),
        ("CVE-2019-1551", "libssl1.1"),
    ]
    musl = found[("CVE-2019-14697", "musl")]
    assert musl.severity == "CRITICAL"
    assert musl.installed_version == "1.1.20-r4"
    assert musl.fixed_versions == ["1.1.20-r5"] and musl.fix_available
    assert musl.cvss_score == 9.8
    assert musl.cvss_vector == "CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
    assert musl.purl == "pkg:apk/alpine/musl@1.1.20-r4?arch=x86_64&distro=3.9.4"
    assert musl.ecosystem == "apk"
    assert musl.sources == ["trivy:trivy@dev"]
    assert found[("CVE-2019-1551", "libssl1.1")].fixed_versions == ["1.1.1d-r2"]
    assert found[("CVE-2019-1549", "libssl1.1")].severity == "MEDIUM"
    assert sec.findings[0].severity == "CRITICAL"  # most severe first
    (report,) = sec.reports
    assert (report.format, report.scanner, report.scanner_version) == ("trivy", "trivy", "dev")
    assert report.scanned_at == "2021-08-25T12:20:30.000000005Z"
    assert report.artifact_name == "testdata/fixtures/images/alpine-39.tar.gz"
    assert report.artifact_matches is True
    assert report.artifact_digest == ALPINE39_IMAGE_ID
    assert report.counts == zero_counts(CRITICAL=2, MEDIUM=4)


def test_trivy_report_for_another_image_does_not_match() -> None:
    (report,) = section(ALPINE39).reports
    assert report.artifact_matches is False
    assert report.artifact_digests == [ALPINE39_IMAGE_ID]


def test_trivy_gomod_dedups_the_same_package_across_targets() -> None:
    # GMS-2022-20 is listed for go.mod, submod/go.mod and submod2/go.mod: one fact.
    sec = section(GOMOD_VEX_OUTPUT)
    found = by_key(sec)
    assert sorted(found) == [
        ("CVE-2021-38561", "golang.org/x/text"),
        ("GMS-2022-20", "github.com/docker/distribution"),
    ]
    docker = found[("GMS-2022-20", "github.com/docker/distribution")]
    assert docker.severity == "UNKNOWN"
    assert docker.installed_version == "v2.7.1+incompatible"
    assert docker.fixed_versions == ["v2.8.0"]
    assert sec.counts == zero_counts(UNKNOWN=2)
    assert sec.reports[0].artifact_matches is None  # a repository scan names no digest


def test_trivy_sarif_alpine310() -> None:
    sec = section(ALPINE310_SARIF)
    assert sec.counts == zero_counts(MEDIUM=4)
    found = by_key(sec)
    assert sorted(found) == [
        ("CVE-2019-1549", "libcrypto1.1"),
        ("CVE-2019-1549", "libssl1.1"),
        ("CVE-2019-1551", "libcrypto1.1"),
        ("CVE-2019-1551", "libssl1.1"),
    ]
    fact = found[("CVE-2019-1551", "libcrypto1.1")]
    assert fact.installed_version == "1.1.1c-r0"
    assert fact.fixed_versions == ["1.1.1d-r2"]
    assert fact.cvss_score == 5.3
    assert fact.sources == ["sarif:trivy@dev"]
    (report,) = sec.reports
    assert (report.scanner, report.scanner_version) == ("Trivy", "dev")
    assert report.artifact_digests == [
        "sha256:961769676411f082461f9ef46626dd7a2d1e2b2a38e6a44364bcbecf51e66dd4"
    ]


def test_cyclonedx_from_trivy_npm() -> None:
    sec = section(NPM_CDX)
    (fact,) = sec.findings
    assert (fact.id, fact.package_name, fact.installed_version) == (
        "CVE-2019-11358",
        "jquery",
        "3.3.9",
    )
    assert fact.purl == "pkg:npm/jquery@3.3.9" and fact.ecosystem == "npm"
    # ratings: all "medium" except ubuntu "low"; highest CVSS v3 score is NVD 6.1.
    assert fact.severity == "MEDIUM"
    assert fact.cvss_score == 6.1
    assert fact.cvss_vector == "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N"
    assert fact.fixed_versions == ["3.4.0"]  # "Upgrade jquery to version 3.4.0"
    assert not fact.suppressed
    (report,) = sec.reports
    assert (report.scanner, report.scanner_version) == ("trivy", "dev")
    assert report.artifact_name == "testdata/fixtures/repo/npm"


def test_cyclonedx_cisa_case1_not_affected_is_suppressed() -> None:
    sec = section(CISA_VEX)
    assert sec.status is SectionStatus.OK
    (fact,) = sec.findings
    assert fact.id == "CVE-2021-44228"
    assert (fact.package_name, fact.installed_version) == ("ABC", "4.2")  # affects product-ABC
    assert fact.suppressed
    assert fact.suppressed_by == "cyclonedx:evidence.scans[0]#vulnerabilities[0]"
    assert (fact.vex_status, fact.vex_justification) == ("not_affected", "code_not_present")
    assert sec.counts == zero_counts()


def test_grype_snapshot() -> None:
    sec = section(GRYPE, digest=GRYPE_MANIFEST)
    found = by_key(sec)
    low = found[("CVE-1999-0001", "package-1")]
    assert (low.severity, low.cvss_score, low.installed_version) == ("LOW", 8.2, "1.1.1")
    assert low.fixed_versions == ["1.2.1", "2.1.3", "3.4.0"] and low.fix_available
    crit = found[("CVE-1999-0002", "package-2")]
    assert (crit.severity, crit.cvss_score) == ("CRITICAL", 8.5)
    assert crit.fixed_versions == [] and not crit.fix_available
    assert crit.purl == "pkg:deb/package-2@2.2.2" and crit.ecosystem == "deb"
    assert sec.counts == zero_counts(CRITICAL=1, LOW=1)
    (report,) = sec.reports
    assert report.artifact_matches is True
    assert report.artifact_name == "user-input"
    assert (report.scanner, report.scanner_version) == ("grype", "[not provided]")


def test_osv_scanner_merges_aliases() -> None:
    sec = section(OSV)
    found = by_key(sec)
    assert sorted(found) == [
        ("CVE-2021-3121", "github.com/gogo/protobuf"),
        ("CVE-2022-24713", "regex"),
    ]
    regex = found[("CVE-2022-24713", "regex")]
    # GHSA-m5pq-gvj9-9vr8 (database_specific.severity HIGH) and RUSTSEC-2022-0013 (CVSS
    # 3.1 .../A:H = 7.5) share CVE-2022-24713: one fact.
    assert regex.aliases == ["GHSA-m5pq-gvj9-9vr8", "RUSTSEC-2022-0013"]
    assert (regex.severity, regex.cvss_score) == ("HIGH", 7.5)
    assert regex.installed_version == "1.5.1" and regex.fixed_versions == ["1.5.5"]
    assert regex.ecosystem == "cargo"
    gogo = found[("CVE-2021-3121", "github.com/gogo/protobuf")]
    assert gogo.aliases == ["GHSA-c3h9-896r-86jm", "GO-2021-0053"]
    assert gogo.severity == "UNKNOWN" and gogo.cvss_score is None
    assert gogo.fixed_versions == ["1.3.2"]
    assert sec.counts == zero_counts(HIGH=1, UNKNOWN=1)


def test_openvex_alone_is_not_a_scan() -> None:
    sec = section(TRIVY_OPENVEX)
    assert sec.status is SectionStatus.MISSING
    assert [r.format for r in sec.reports] == ["openvex"]
    assert sec.findings == []
