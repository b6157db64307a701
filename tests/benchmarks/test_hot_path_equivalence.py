"""The hot-path shortcuts of issue 9 give exactly what the slow paths gave.

* ``ScanReports``: the memoized section equals a fresh parse; bad reports still raise.
* ``json_copy``: a deep copy equal to ``copy.deepcopy``, never sharing containers.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from engine.errors import InputError
from engine.inputs.providers import ScanReports
from engine.inputs.scans import build_vulnerabilities_section
from engine.log.canonical import canonical_bytes
from engine.log.masking import json_copy
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


def test_json_copy_is_a_deep_copy() -> None:
    doc = json.loads((REPO / "examples" / "requests" / "allow.json").read_text())
    copied = json_copy(doc)
    assert copied == doc
    copied["evidence"]["scans"][0]["report"]["mutated"] = True
    assert "mutated" not in doc["evidence"]["scans"][0]["report"]
    odd: dict[str, Any] = {"t": (1, 2), 3: "int key", "nan": float("nan")}
    again = json_copy(odd)
    assert again.keys() == odd.keys() and again["t"] == (1, 2)
    assert again is not odd and copy.deepcopy(odd).keys() == again.keys()
