"""Evidence kept as text (``engine.models.raw.RawObject``) gives the facts its parsed value
gives, is parsed only when a cache misses, and dumps as that value.

Real documents: the Sigstore conformance bundles (valid and failing) and the scanner reports
under ``tests/assets`` (sources in ``tests/assets/SOURCES.md``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from engine.inputs.provenance import ProvenanceVerifier, build_provenance_section
from engine.inputs.providers import ScanReports
from engine.inputs.scans import build_vulnerabilities_section
from engine.models.raw import RawObject, UnreadableEvidence, object_key, object_value
from engine.models.request import DecisionRequestV1, ScanEvidence

ASSETS = Path(__file__).resolve().parents[1] / "assets"
CONFORMANCE = ASSETS / "sigstore" / "conformance"
A_TXT = "sha256:" + hashlib.sha256((CONFORMANCE / "a.txt").read_bytes()).hexdigest()
BUNDLES = sorted(CONFORMANCE.glob("*/bundle.sigstore.json"))
REPORTS = sorted(p for p in (ASSETS / "scanners").rglob("*") if p.suffix in (".json", ".sarif"))


@pytest.fixture(scope="module")
def verifier() -> ProvenanceVerifier:
    return ProvenanceVerifier.from_settings()


def _text(path: Path) -> bytes:
    """The document as a client would send it: compact JSON."""
    return json.dumps(json.loads(path.read_bytes()), separators=(",", ":")).encode()


def test_the_corpus_is_there() -> None:
    assert len(BUNDLES) >= 8 and len(REPORTS) >= 8


@pytest.mark.parametrize("path", BUNDLES, ids=lambda p: p.parent.name)
def test_a_raw_bundle_verifies_to_the_fact_of_its_value(
    verifier: ProvenanceVerifier, path: Path
) -> None:
    text = _text(path)
    raw = verifier.evaluate(RawObject(text), artifact_digest=A_TXT, index=2)
    parsed = verifier.evaluate(json.loads(text), artifact_digest=A_TXT, index=2)
    assert raw.model_dump() == parsed.model_dump()
    if path.parent.name.startswith("happy-path"):
        assert raw.verification == "verified"
    if path.parent.name.endswith("_fail"):
        assert raw.verification == "failed"


def test_a_warm_raw_bundle_is_not_parsed() -> None:
    verifier = ProvenanceVerifier.from_settings()
    text = _text(CONFORMANCE / "happy-path-intoto-in-dsse-v3" / "bundle.sigstore.json")
    first = RawObject(text)
    fact = verifier.evaluate(first, artifact_digest=A_TXT)
    assert first.parsed and fact.verification == "verified"
    hits = verifier.cache_stats.hits
    again = RawObject(bytes(text))  # another request's copy of the same bytes
    assert verifier.evaluate(again, artifact_digest=A_TXT) is fact
    assert verifier.cache_stats.hits == hits + 1
    assert not again.parsed
    # The same bundle written differently is another key: parsed, verified again, equal.
    spaced = RawObject(json.dumps(json.loads(text), indent=1).encode())
    assert verifier.evaluate(spaced, artifact_digest=A_TXT).model_dump() == fact.model_dump()
    assert spaced.parsed


def test_a_section_of_raw_bundles_is_the_section_of_their_values(
    verifier: ProvenanceVerifier,
) -> None:
    texts = [_text(p) for p in BUNDLES]
    raw = build_provenance_section(
        [RawObject(t) for t in texts], artifact_digest=A_TXT, verifier=verifier
    )
    parsed = build_provenance_section(
        [json.loads(t) for t in texts], artifact_digest=A_TXT, verifier=verifier
    )
    assert raw.model_dump() == parsed.model_dump()


@pytest.mark.parametrize("path", REPORTS, ids=lambda p: p.name)
def test_a_raw_report_gives_the_section_of_its_value(path: Path) -> None:
    text = _text(path)
    raw = build_vulnerabilities_section(
        [ScanEvidence(report=RawObject(text))], artifact_digest=A_TXT
    )
    parsed = build_vulnerabilities_section(
        [ScanEvidence(report=json.loads(text))], artifact_digest=A_TXT
    )
    assert raw.model_dump() == parsed.model_dump()


def test_a_warm_raw_report_is_not_parsed() -> None:
    text = _text(ASSETS / "scanners" / "trivy" / "alpine-39.trivy.json")
    memo = ScanReports()
    first = ScanEvidence(report=RawObject(text))
    section = memo.collect([first], artifact_digest=A_TXT)
    again = RawObject(bytes(text))
    assert memo.collect([ScanEvidence(report=again)], artifact_digest=A_TXT) is section
    assert not again.parsed
    # Another format or another artifact is another entry.
    sarif = ScanEvidence(format="trivy", report=RawObject(bytes(text)))
    assert memo.collect([sarif], artifact_digest=A_TXT) is not section
    other = RawObject(bytes(text))
    memo.collect([ScanEvidence(report=other)], artifact_digest="sha256:" + "0" * 64)
    assert other.parsed


UNREADABLE = {
    "bad utf-8 in a string": b'{"mediaType": "\xff"}',
    "a control character in a string": b'{"a": "x\x01y"}',
    "nested beyond the standard library": b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    "not an object": b"[1, 2]",
    "not json": b"{",
}


@pytest.mark.parametrize("case", sorted(UNREADABLE))
def test_unreadable_text_is_a_signal_not_a_fact(verifier: ProvenanceVerifier, case: str) -> None:
    text = UNREADABLE[case]
    with pytest.raises(UnreadableEvidence):
        verifier.evaluate(RawObject(text), artifact_digest=A_TXT)
    with pytest.raises(UnreadableEvidence):
        build_vulnerabilities_section([ScanEvidence(report=RawObject(text))], artifact_digest=A_TXT)
    # Never kept: the same text raises again (a warm cache never vouches for it).
    with pytest.raises(UnreadableEvidence):
        verifier.evaluate(RawObject(text), artifact_digest=A_TXT)


def test_nesting_the_fast_parser_refuses_is_read_as_the_body_would_be(
    verifier: ProvenanceVerifier,
) -> None:
    # jiter stops at 200 levels; the whole body would then be read by the standard library,
    # and so is the raw object: the verifier's own depth limit answers, as for the dict.
    deep: Any = "x"
    for _ in range(300):
        deep = [deep]
    text = json.dumps({"mediaType": "application/vnd.dev.sigstore.bundle+json", "x": deep})
    raw = verifier.evaluate(RawObject(text.encode()), artifact_digest=A_TXT)
    parsed = verifier.evaluate(json.loads(text), artifact_digest=A_TXT)
    assert raw.model_dump() == parsed.model_dump()
    assert raw.verification == "invalid"


def test_keys_name_text_and_values_apart() -> None:
    text = b'{"b":1,"a":[1,2.5]}'
    raw = RawObject(text)
    assert object_key(raw) == "t" + hashlib.sha256(text).hexdigest()
    assert object_key(raw) == object_key(RawObject(bytes(text)))
    assert object_key(raw) != object_key(RawObject(b'{"b": 1, "a": [1, 2.5]}'))
    value = json.loads(text)
    assert object_key(value)[0] in "oj" and object_key(value) != object_key(raw)
    assert object_key(value, sort_keys=True) == object_key({"a": [1, 2.5], "b": 1}, sort_keys=True)
    assert not raw.parsed
    assert object_value(raw) == value and raw.parsed
    assert object_value(raw) is object_value(raw)
    assert object_value(value) is value


def test_a_request_dumps_the_same_whichever_way_its_evidence_was_read() -> None:
    bundle = _text(CONFORMANCE / "happy-path-v0.3" / "bundle.sigstore.json")
    report = _text(ASSETS / "scanners" / "grype" / "TestJsonImgsPresenter.grype.json")

    def request(attestation: Any, scan: Any) -> DecisionRequestV1:
        return DecisionRequestV1.model_validate(
            {
                "release": {"id": "r", "service": "s", "environment": "dev", "stage": "deploy"},
                "artifact": {"digest": A_TXT},
                "evidence": {
                    "attestations": [attestation],
                    "scans": [{"format": "grype", "report": scan}],
                },
            }
        )

    raw = request(RawObject(bundle), RawObject(report))
    parsed = request(json.loads(bundle), json.loads(report))
    assert raw.model_dump() == parsed.model_dump()
    assert raw.model_dump(mode="json") == parsed.model_dump(mode="json")
    assert json.loads(raw.model_dump_json()) == json.loads(parsed.model_dump_json())
    assert isinstance(raw.evidence.attestations[0], RawObject)
    assert isinstance(parsed.evidence.attestations[0], dict)


def test_the_request_schema_still_says_object() -> None:
    schema = DecisionRequestV1.model_json_schema()["$defs"]
    document = {"type": "object", "additionalProperties": True}
    assert schema["Evidence"]["properties"]["attestations"]["items"] == document
    report = schema["ScanEvidence"]["properties"]["report"]
    assert {k: report[k] for k in document} == document


@pytest.mark.parametrize("where", ["attestation", "report"])
@pytest.mark.parametrize("value", [[1], "x", None, 3])
def test_a_document_that_is_not_an_object_gets_the_dicts_error(where: str, value: Any) -> None:
    evidence = (
        {"attestations": [value]} if where == "attestation" else {"scans": [{"report": value}]}
    )
    with pytest.raises(ValidationError) as caught:
        DecisionRequestV1.model_validate(
            {
                "release": {"id": "r", "service": "s", "environment": "dev", "stage": "deploy"},
                "artifact": {"digest": A_TXT},
                "evidence": evidence,
            }
        )
    loc = (
        ("evidence", "attestations", 0)
        if where == "attestation"
        else ("evidence", "scans", 0, "report")
    )
    assert caught.value.errors(include_url=False) == [
        {
            "type": "dict_type",
            "loc": loc,
            "msg": "Input should be a valid dictionary",
            "input": value,
        }
    ]
