"""OpenVEX applied across reports, and de-duplication across scanners."""

from __future__ import annotations

from typing import Any

from tests.inputs.test_scans_support import (
    ALPINE39,
    ALPINE310_JSON,
    ALPINE310_SARIF,
    GOMOD_OPENVEX,
    GOMOD_VEX_OUTPUT,
    GOMOD_WITH_CVE,
    GRYPE,
    OSV,
    TRIVY_OPENVEX,
    by_key,
    load,
    section,
    zero_counts,
)

GOMOD_VEX_ID = "aquasecurity/trivy:613fd55abbc2857b5ca28b07a26f3cd4c8b0ddc4c8a97c57497a2d4c4880d7fc"
OPA = ("CVE-2022-23628", "github.com/open-policy-agent/opa")
ALPINE310_IMAGE_ID = "sha256:961769676411f082461f9ef46626dd7a2d1e2b2a38e6a44364bcbecf51e66dd4"


def _vex(*statements: dict[str, Any], timestamp: str = "2024-01-01T00:00:00Z") -> dict[str, Any]:
    return {
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": "https://example.test/vex/1",
        "author": "test",
        "timestamp": timestamp,
        "version": 1,
        "statements": list(statements),
    }


def test_gomod_report_without_vex_has_the_cve() -> None:
    sec = section(GOMOD_WITH_CVE)
    opa = by_key(sec)[OPA]
    assert (opa.severity, opa.cvss_score, opa.fixed_versions) == ("MEDIUM", 5.3, ["0.37.0"])
    assert not opa.suppressed
    assert sec.counts == zero_counts(MEDIUM=1, UNKNOWN=2)


def test_openvex_suppresses_the_cve_like_trivy_does() -> None:
    sec = section(GOMOD_WITH_CVE, GOMOD_OPENVEX)
    opa = by_key(sec)[OPA]
    assert opa.suppressed
    assert opa.suppressed_by == f"openvex:{GOMOD_VEX_ID}#0"
    assert opa.vex_status == "not_affected"
    assert opa.vex_justification == "vulnerable_code_not_in_execute_path"
    assert sec.counts == zero_counts(UNKNOWN=2)
    # Same unsuppressed set as Trivy's own output with that VEX applied (upstream golden).
    trivy_applied = {(f.id, f.package_name) for f in section(GOMOD_VEX_OUTPUT).findings}
    assert {(f.id, f.package_name) for f in sec.findings if not f.suppressed} == trivy_applied


def test_openvex_version_must_match() -> None:
    vex = load(GOMOD_OPENVEX)
    subcomponent = vex["statements"][0]["products"][0]["subcomponents"][0]
    subcomponent["@id"] = "pkg:golang/github.com/open-policy-agent/opa@v0.36.0"
    opa = by_key(section(GOMOD_WITH_CVE, vex))[OPA]
    assert not opa.suppressed and opa.vex_status is None


def test_openvex_latest_statement_wins() -> None:
    product = {"@id": "pkg:apk/alpine/musl@1.1.20-r4"}
    earlier = {
        "vulnerability": {"name": "CVE-2019-14697"},
        "products": [product],
        "status": "not_affected",
        "justification": "component_not_present",
        "timestamp": "2024-01-01T00:00:00Z",
    }
    later = {
        "vulnerability": {"name": "CVE-2019-14697"},
        "products": [product],
        "status": "affected",
        "timestamp": "2024-02-01T00:00:00+01:00",
    }
    musl = by_key(section(ALPINE39, _vex(later, earlier)))[("CVE-2019-14697", "musl")]
    assert not musl.suppressed and musl.vex_status == "affected"
    musl = by_key(section(ALPINE39, _vex(earlier)))[("CVE-2019-14697", "musl")]
    assert musl.suppressed and musl.suppressed_by == "openvex:https://example.test/vex/1#0"


def test_openvex_ignores_qualifiers_and_matches_only_that_package() -> None:
    statement = {
        "vulnerability": {"name": "CVE-2019-14697"},
        "products": [{"@id": "pkg:apk/alpine/musl@1.1.20-r4?arch=aarch64"}],
        "status": "fixed",
    }
    sec = section(ALPINE39, _vex(statement))
    found = by_key(sec)
    assert found[("CVE-2019-14697", "musl")].suppressed
    assert not found[("CVE-2019-14697", "musl-utils")].suppressed
    assert sec.counts == zero_counts(CRITICAL=1, MEDIUM=4)


def test_openvex_matches_through_aliases() -> None:
    # The statement names the RUSTSEC id; the merged fact's id is CVE-2022-24713.
    statement = {
        "vulnerability": {
            "@id": "https://rustsec.org/advisories/RUSTSEC-2022-0013.html",
            "name": "RUSTSEC-2022-0013",
        },
        "products": [
            {
                "@id": "pkg:golang/example.com/app",
                "subcomponents": [{"identifiers": {"purl": "pkg:cargo/regex"}}],
            }
        ],
        "status": "not_affected",
        "justification": "vulnerable_code_cannot_be_controlled_by_adversary",
    }
    sec = section(OSV, _vex(statement))
    regex = by_key(sec)[("CVE-2022-24713", "regex")]
    assert regex.suppressed and regex.vex_status == "not_affected"
    assert sec.counts == zero_counts(UNKNOWN=1)


def test_trivy_project_vex_suppresses_nothing_unrelated() -> None:
    sec = section(ALPINE39, TRIVY_OPENVEX)
    assert not any(f.suppressed for f in sec.findings)
    assert sec.counts == zero_counts(CRITICAL=2, MEDIUM=4)


def test_trivy_json_and_sarif_of_the_same_image_collapse() -> None:
    sec = section(ALPINE310_JSON, ALPINE310_SARIF, digest=ALPINE310_IMAGE_ID)
    assert len(sec.findings) == 4
    assert sec.counts == zero_counts(MEDIUM=4)
    for fact in sec.findings:
        # that upstream golden predates the "Trivy.Version" member: no version to report
        assert fact.sources == ["trivy:trivy", "sarif:trivy@dev"]
        assert fact.purl is not None and fact.purl.startswith("pkg:apk/alpine/")
        assert fact.installed_version == "1.1.1c-r0"
    assert [r.artifact_matches for r in sec.reports] == [True, True]
    assert [r.counts for r in sec.reports] == [zero_counts(MEDIUM=4)] * 2


def test_different_images_do_not_collapse() -> None:
    # Same CVEs and packages, different installed versions (1.1.1b-r1 vs 1.1.1c-r0).
    sec = section(ALPINE39, ALPINE310_SARIF)
    assert len(sec.findings) == 6 + 4


def test_grype_and_trivy_merge_on_shared_alias_and_keep_highest_severity() -> None:
    grype = load(GRYPE)
    match = grype["matches"][0]  # CVE-1999-0001, LOW, package-1 1.1.1
    match["vulnerability"]["id"] = "GHSA-xxxx-yyyy-zzzz"
    match["relatedVulnerabilities"] = [{"id": "CVE-2019-1549"}]
    match["artifact"].update(name="libssl1.1", version="1.1.1b-r1")
    sec = section(ALPINE39, grype)
    fact = by_key(sec)[("CVE-2019-1549", "libssl1.1")]
    assert fact.aliases == ["GHSA-xxxx-yyyy-zzzz"]
    assert fact.severity == "MEDIUM"  # Trivy MEDIUM beats Grype LOW
    assert fact.cvss_score == 8.2  # Grype's score is the higher one
    assert fact.fixed_versions == ["1.1.1d-r0", "1.2.1", "2.1.3", "3.4.0"]
    assert fact.sources == ["trivy:trivy@dev", "grype:grype@[not provided]"]
    assert len(sec.findings) == 6 + 1
