"""The hot-path shortcuts of issue 9 give exactly what the slow paths gave.

* ``engine.log.canonical``: the C ``json`` encoder is used only when its bytes are the
  RFC 8785 bytes; checked against the ``rfc8785`` package on generated JSON values.
* ``ScanReports``: the memoized section equals a fresh parse; bad reports still raise.
* ``json_copy``: a deep copy equal to ``copy.deepcopy``, never sharing containers.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import InputError
from engine.inputs.providers import ScanReports
from engine.inputs.scans import build_vulnerabilities_section
from engine.log.canonical import _as_jcs_numbers, canonical_bytes, jcs_dumps
from engine.log.masking import json_copy
from engine.models.request import DecisionRequestV1, ScanEvidence
from tests.conftest import REPO

_KEYS = st.text(max_size=5) | st.sampled_from(["\U0001f600", "\ue000", "a\x00", "\u2028", ""])
_STRINGS = _KEYS | st.sampled_from(["\ud800", "\x1f\x7f", '"\\', "\b\f\n\r\t"])
_NUMBERS = (
    st.integers(-(2**70), 2**70)
    | st.integers(0, 2**40).map(lambda n: n * 2**20)  # big, exactly representable
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.floats(1e-4, 1e16)
)
_VALUES = st.recursive(
    st.none() | st.booleans() | _NUMBERS | _STRINGS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=25,
)


def _outcome(fn: Any, value: Any) -> Any:
    try:
        return fn(value)
    except Exception as exc:  # noqa: BLE001 - the outcome compared is the exception type
        return type(exc)


@settings(max_examples=600, deadline=None)
@given(_VALUES)
def test_jcs_dumps_is_rfc8785(value: Any) -> None:
    assert _outcome(jcs_dumps, value) == _outcome(rfc8785.dumps, value)


@settings(max_examples=600, deadline=None)
@given(_VALUES)
def test_canonical_bytes_is_rfc8785_of_jcs_numbers(value: Any) -> None:
    expected = _outcome(lambda v: rfc8785.dumps(_as_jcs_numbers(v)), value)
    got = _outcome(canonical_bytes, value)
    assert got == expected or (got is InputError and isinstance(expected, type))


def test_big_integers_in_shared_or_nested_containers_take_the_right_path() -> None:
    shared = [2**60, {"t": 1795700057388901376}]
    for value in ({"a": shared, "b": shared}, {"now_ns": 1795700057388901376, "x": [1.5]}):
        assert canonical_bytes(value) == rfc8785.dumps(_as_jcs_numbers(value))
    assert canonical_bytes({"t": 1795700057388901376}) == b'{"t":1795700057388901400}'


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
