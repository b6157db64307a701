"""The hot-path shortcuts of issue 9 give exactly what the slow paths gave.

* ``ScanReports``: the memoized section equals a fresh parse; bad reports still raise.
* ``deep_copy``: a deep copy equal to ``copy.deepcopy``, never sharing containers.
* ``fingerprint``: equal JSON values share a fingerprint, different ones never do, including
  the values orjson cannot tell apart (NaN and null, big integers and floats).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from engine.errors import InputError
from engine.inputs.providers import ScanReports
from engine.inputs.scans import build_vulnerabilities_section
from engine.jsonfast import deep_copy, fingerprint
from engine.log.canonical import canonical_bytes
from engine.log.record import record_text
from engine.models.request import DecisionRequestV1, ScanEvidence
from tests.conftest import REPO


def test_quantized_timestamps_canonicalize_exactly() -> None:
    """A quantized ns timestamp is beyond 2**53: JCS writes the double it denotes."""
    assert canonical_bytes({"t": 1795700057388901376}) == b'{"t":1795700057388901400}'
    with pytest.raises(InputError):
        canonical_bytes({"t": 2**60 + 1})


def _request() -> DecisionRequestV1:
    text = (REPO / "examples" / "requests" / "rollback.json").read_text()
    return DecisionRequestV1.model_validate_json(text)


def test_scan_sections_are_memoized_and_equal_to_a_fresh_parse() -> None:
    request = _request()
    scans, digest = request.evidence.scans, request.artifact.digest
    provider = ScanReports()
    first = provider.collect(scans, artifact_digest=digest)
    assert provider.collect(scans, artifact_digest=digest) is first
    assert first == build_vulnerabilities_section(scans, artifact_digest=digest)
    other = "sha256:" + "0" * 64
    assert provider.collect(scans, artifact_digest=other) == build_vulnerabilities_section(
        scans, artifact_digest=other
    )
    assert ScanReports(cache_size=0).collect(scans, artifact_digest=digest) == first


def test_malformed_reports_raise_every_time() -> None:
    provider = ScanReports()
    bad = [ScanEvidence(format="trivy", report={"SchemaVersion": 2, "Results": "nope"})]
    for _ in range(2):
        with pytest.raises(InputError):
            provider.collect(bad, artifact_digest="sha256:" + "a" * 64)


def test_deep_copy_is_a_deep_copy() -> None:
    doc = json.loads((REPO / "examples" / "requests" / "allow.json").read_text())
    copied = deep_copy(doc)
    assert copied == doc
    copied["evidence"]["scans"][0]["report"]["mutated"] = True
    assert "mutated" not in doc["evidence"]["scans"][0]["report"]
    odd: dict[str, Any] = {"t": (1, 2), 3: "int key", "nan": float("nan")}
    again = deep_copy(odd)
    assert again.keys() == odd.keys() and again["t"] == (1, 2)
    assert again is not odd and copy.deepcopy(odd).keys() == again.keys()


def test_deep_copy_keeps_big_integers_exact() -> None:
    doc = {"n": 2**70, "m": [10**25, -(2**64)]}
    assert deep_copy(doc) == doc and isinstance(deep_copy(doc)["n"], int)


def test_fingerprints_tell_apart_what_orjson_would_not() -> None:
    doc = json.loads((REPO / "examples" / "requests" / "allow.json").read_text())
    assert fingerprint(doc) == fingerprint(copy.deepcopy(doc))
    assert fingerprint({"a": 1, "b": 2}, sort_keys=True) == fingerprint(
        {"b": 2, "a": 1}, sort_keys=True
    )
    distinct = [
        {"x": None},
        {"x": float("nan")},
        {"x": float("inf")},
        {"x": float("-inf")},
        {"x": 2**70},
        {"x": float(2**70)},
        {"x": 1},
        {"x": 1.0},
        {"x": "\ud800"},
        {"x": "\ud801"},
    ]
    distinct += [
        {"x": None, "y": None},
        {"x": None, "y": float("nan")},  # a null elsewhere must not hide the NaN
        [None, float("inf")],
        [None, None],
    ]
    prints = [fingerprint(v) for v in distinct]
    assert None not in prints
    assert len(set(prints)) == len(distinct)
    # Values with a null (most facts: "message": null) stay on orjson's path.
    assert fingerprint({"x": None, "y": [1.5, None]}).startswith("o")  # type: ignore[union-attr]
    assert fingerprint({"x": object()}) is None


def test_record_text_reads_back_equal_including_what_orjson_refuses() -> None:
    doc = json.loads((REPO / "examples" / "requests" / "allow.json").read_text())
    for value in (doc, {"big": 2**70, "s": "\ud800", "u": "é", "n": None, "f": 0.1}):
        text = record_text(value)
        assert json.loads(text) == value
        assert "\n" not in text and ", " not in text[:200]
