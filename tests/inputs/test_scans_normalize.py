"""Severity, CVSS and purl helpers, generic SARIF, and random input never crashing the parsers."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import InputError
from engine.inputs.scans import build_vulnerabilities_section
from engine.inputs.scans.normalize import (
    cvss3_base_score,
    find_sha256,
    parse_purl,
    purl_matches,
    severity_from_score,
    severity_from_word,
)
from engine.models.request import ScanEvidence, ScanFormat
from engine.models.vulnerabilities import VulnerabilitiesSection
from tests.inputs.test_scans_support import ALL_CORPUS, OTHER_DIGEST, load, section, zero_counts


@pytest.mark.parametrize(
    ("vector", "score"),
    [
        # Scores as published by NVD for these vectors.
        ("CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),  # CVE-2019-14697
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:N/A:N", 5.3),  # CVE-2019-1549
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1),  # CVE-2019-11358
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H", 7.5),  # CVE-2022-24713
        ("CVSS:3.1/AV:N/AC:L/PR:L/UI:R/S:C/C:L/I:L/A:H", 8.2),  # Grype snapshot
        ("CVSS:3.1/AV:N/AC:H/PR:L/UI:N/S:C/C:H/I:H/A:H", 8.5),  # Grype snapshot
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0),
        ("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:N/I:N/A:N", 0.0),
    ],
)
def test_cvss3_base_score(vector: str, score: float) -> None:
    assert cvss3_base_score(vector) == score


@pytest.mark.parametrize(
    "vector",
    ["AV:N/AC:L/Au:N/C:P/I:P/A:P", "CVSS:4.0/AV:N/AC:L/AT:N", "CVSS:3.1/AV:X", "CVSS:3.1/junk"],
)
def test_cvss_vectors_not_scored(vector: str) -> None:
    assert cvss3_base_score(vector) is None


@pytest.mark.parametrize(
    ("score", "severity"),
    [
        (10.0, "CRITICAL"),
        (9.0, "CRITICAL"),
        (8.9, "HIGH"),
        (7.0, "HIGH"),
        (6.9, "MEDIUM"),
        (4.0, "MEDIUM"),
        (3.9, "LOW"),
        (0.1, "LOW"),
        (0.0, "NONE"),
        (None, "UNKNOWN"),
    ],
)
def test_security_severity_thresholds(score: float | None, severity: str) -> None:
    assert severity_from_score(score) == severity


@pytest.mark.parametrize(
    ("word", "severity"),
    [
        ("Critical", "CRITICAL"),
        ("MODERATE", "MEDIUM"),
        ("Negligible", "LOW"),
        ("info", "NONE"),
        ("bogus", "UNKNOWN"),
        (None, "UNKNOWN"),
    ],
)
def test_severity_words(word: str | None, severity: str) -> None:
    assert severity_from_word(word) == severity


def test_purl_parsing_and_matching() -> None:
    found = parse_purl("pkg:npm/%40babel/core@7.0.0?foo=bar#sub")
    assert found is not None and (found.type, found.name, found.version) == (
        "npm",
        "@babel/core",
        "7.0.0",
    )
    vex = parse_purl("pkg:NPM/@babel/core")
    assert vex is not None and purl_matches(vex, found)
    other = parse_purl("pkg:npm/%40babel/core@7.0.1")
    assert other is not None and not purl_matches(other, found)
    assert parse_purl("not a purl") is None and parse_purl("pkg:npm/") is None
    assert find_sha256("pkg:oci/app@sha256%3A" + "AB" * 32) == "sha256:" + "ab" * 32


def _generic_sarif(**result_props: Any) -> dict[str, Any]:
    return {
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "codeql",
                        "semanticVersion": "2.19.0",
                        "rules": [
                            {"id": "js/sql-injection", "properties": {"security-severity": "8.8"}},
                            {"id": "js/xss", "properties": {"security-severity": "6.1"}},
                            {"id": "js/unused", "properties": {}},
                        ],
                    }
                },
                "results": [
                    {"ruleId": "js/sql-injection", "ruleIndex": 0, "message": {"text": "x"}},
                    {"ruleId": "js/xss", "message": {"text": "y"}, "properties": result_props},
                    {"ruleId": "js/unused", "message": {"text": "z"}},
                    {"ruleId": "js/xss", "kind": "pass", "message": {"text": "ok"}},
                ],
            }
        ],
    }


def test_generic_sarif_security_severity() -> None:
    sec = section(_generic_sarif())
    assert {(f.id, f.severity) for f in sec.findings} == {
        ("js/sql-injection", "HIGH"),
        ("js/xss", "MEDIUM"),
        ("js/unused", "UNKNOWN"),
    }
    assert sec.reports[0].scanner_version == "2.19.0"
    # A result's own security-severity wins over its rule's.
    sec = section(_generic_sarif(**{"security-severity": 9.5}))
    assert {(f.id, f.severity) for f in sec.findings} >= {("js/xss", "CRITICAL")}
    assert sec.counts == zero_counts(CRITICAL=1, HIGH=1, UNKNOWN=1)


# -- Random input: only InputError or a valid section may come out --------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
_CORPUS = {name: load(name) for name in ALL_CORPUS}


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, member in value.items():
            out.extend(_paths(member, (*prefix, key)))
    elif isinstance(value, list):
        for index, member in enumerate(value):
            out.extend(_paths(member, (*prefix, index)))
    return out


_MUTATION_POINTS = [(name, path) for name, report in _CORPUS.items() for path in _paths(report)[1:]]


def _run(scans: list[ScanEvidence]) -> None:
    try:
        result = build_vulnerabilities_section(scans, artifact_digest=OTHER_DIGEST)
    except InputError as error:
        assert error.errors and error.errors[0].loc
        return
    assert isinstance(result, VulnerabilitiesSection)
    VulnerabilitiesSection.model_validate(result.model_dump())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.sampled_from(list(ScanFormat)), st.dictionaries(st.text(max_size=12), _json)),
        min_size=1,
        max_size=3,
    )
)
def test_random_reports_never_crash(reports: list[tuple[ScanFormat, dict[str, Any]]]) -> None:
    _run([ScanEvidence(format=fmt, report=report) for fmt, report in reports])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_MUTATION_POINTS), _json)
def test_mutated_corpus_reports_never_crash(point: tuple[str, tuple[Any, ...]], value: Any) -> None:
    name, path = point
    report = copy.deepcopy(_CORPUS[name])
    holder: Any = report
    for step in path[:-1]:
        holder = holder[step]
    holder[path[-1]] = value
    _run([ScanEvidence(report=report), ScanEvidence(report=copy.deepcopy(_CORPUS[name]))])
