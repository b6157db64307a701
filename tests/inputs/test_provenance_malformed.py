"""Malformed and lying attestations become ``invalid`` / ``failed`` / ``unsupported`` facts."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from engine.errors import InputError
from engine.inputs.provenance import (
    Limits,
    ProvenanceVerifier,
    build_provenance_section,
    load_attestation_file,
)
from engine.models.provenance import AttestationFact

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "sigstore"
A_TXT = "sha256:" + hashlib.sha256((ASSETS / "conformance/a.txt").read_bytes()).hexdigest()
V03 = "conformance/happy-path-v0.3/bundle.sigstore.json"
DSSE = "conformance/happy-path-intoto-in-dsse-v3/bundle.sigstore.json"
VSA = "slsa-verifier/vsa/gke-gce-pre.bcid-vsa.jsonl"


@pytest.fixture(scope="module")
def verifier() -> ProvenanceVerifier:
    """Package-data root plus the corpus VSA key."""
    return ProvenanceVerifier.from_settings(
        public_keys={"bcid-vsa": ASSETS / "slsa-verifier/vsa/vsa_signing_public_key.pem"}
    )


def bundle(relpath: str) -> dict[str, Any]:
    """A fresh, mutable copy of one corpus bundle."""
    [doc] = load_attestation_file(ASSETS / relpath)
    return copy.deepcopy(doc)


def check(verifier: ProvenanceVerifier, doc: Any, artifact: str = A_TXT) -> AttestationFact:
    """Verify one (possibly broken) attestation through the public entry point."""
    section = build_provenance_section([doc], artifact_digest=artifact, verifier=verifier)
    [fact] = section.attestations
    if fact.verification != "verified":
        assert fact.error, "a rejected fact must carry a message"
        assert fact.signer is None and fact.slsa is None and fact.vsa is None
        assert fact.subject_digests == [] and not fact.subject_matches
    return fact


# --- files -----------------------------------------------------------------------------


def test_truncated_json_file_is_an_input_error(tmp_path: Path) -> None:
    raw = (ASSETS / V03).read_text()
    broken = tmp_path / "bundle.sigstore.json"
    broken.write_text(raw[: len(raw) // 2])
    with pytest.raises(InputError, match=r"bundle\.sigstore\.json: not valid JSON"):
        load_attestation_file(broken)


def test_truncated_json_lines_names_the_line(tmp_path: Path) -> None:
    line = (ASSETS / V03).read_text().strip()
    path = tmp_path / "two.intoto.jsonl"
    path.write_text(line + "\n" + line[:100] + "\n")
    with pytest.raises(InputError, match=r"two\.intoto\.jsonl:2: not valid JSON"):
        load_attestation_file(path)


def test_json_lines_hold_one_bundle_per_line(tmp_path: Path) -> None:
    line = json.dumps(bundle(V03))
    path = tmp_path / "many.intoto.jsonl"
    path.write_text(f"{line}\n\n{line}\n")
    assert len(load_attestation_file(path)) == 2


@pytest.mark.parametrize("content", ["[1, 2]", '"a string"', "", "   \n"])
def test_non_object_or_empty_file_is_an_input_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "x.json"
    path.write_text(content)
    with pytest.raises(InputError):
        load_attestation_file(path)


def test_oversized_file_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_text(json.dumps(bundle(V03)))
    with pytest.raises(InputError, match="exceeds"):
        load_attestation_file(path, max_bytes=1000)


def test_deeply_nested_file_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text('{"a":' * 100_000 + "1" + "}" * 100_000)
    with pytest.raises(InputError, match="nested"):
        load_attestation_file(path)


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        load_attestation_file(tmp_path / "nope.json")


# --- request-level limits --------------------------------------------------------------


def test_too_many_attestations_names_the_field(verifier: ProvenanceVerifier) -> None:
    docs = [bundle(V03)] * (verifier.limits.max_attestations + 1)
    with pytest.raises(InputError) as info:
        build_provenance_section(docs, artifact_digest=A_TXT, verifier=verifier)
    assert info.value.errors[0].loc == "evidence.attestations"


def test_malformed_artifact_digest_is_an_input_error(verifier: ProvenanceVerifier) -> None:
    with pytest.raises(InputError):
        build_provenance_section([bundle(V03)], artifact_digest="sha256:ABC", verifier=verifier)


def test_oversized_bundle_is_invalid() -> None:
    small = ProvenanceVerifier.from_settings(limits=Limits(max_bundle_bytes=2048))
    fact = check(small, bundle(V03))
    assert fact.verification == "invalid" and "exceeds 2048" in (fact.error or "")


def test_deeply_nested_bundle_is_invalid(verifier: ProvenanceVerifier) -> None:
    doc = bundle(V03)
    nested: dict[str, Any] = {}
    doc["extra"] = nested
    for _ in range(40):
        nested["x"] = {}
        nested = nested["x"]
    for _ in range(2):  # refused again: a refused document is never cached
        fact = check(verifier, doc)
        assert fact.verification == "invalid" and "nested deeper" in (fact.error or "")
        assert fact.bundle_digest == "unknown"
    assert verifier.cache_stats.size == 0


def test_uncanonicalizable_bundle_is_invalid(verifier: ProvenanceVerifier) -> None:
    doc = bundle(V03)
    doc["extra"] = float("nan")
    assert check(verifier, doc).verification == "invalid"


# --- wrong JSON types, bad base64, bad certificates --------------------------------------


def _set(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    node: Any = doc
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    node[keys[-1]] = value
    return doc


@pytest.mark.parametrize(
    ("relpath", "path", "value", "fragment"),
    [
        (V03, "mediaType", 3, "bundle.mediaType: expected a string"),
        (V03, "verificationMaterial", [], "bundle.verificationMaterial: expected an object"),
        (V03, "verificationMaterial.tlogEntries", "x", "tlogEntries: expected an array"),
        (V03, "verificationMaterial.tlogEntries", [], "expected one entry"),
        (V03, "messageSignature", [], "messageSignature: expected an object"),
        (V03, "verificationMaterial.tlogEntries.0.kindVersion.kind", None, "kind: required"),
        (V03, "verificationMaterial.tlogEntries.0.integratedTime", "yesterday", "integratedTime"),
        (V03, "verificationMaterial.tlogEntries.0.integratedTime", "9" * 30, "integratedTime"),
        (V03, "verificationMaterial.tlogEntries.0.integratedTime", True, "integratedTime"),
        (V03, "messageSignature.signature", "!!not base64!!", "bundle"),
        (V03, "verificationMaterial.certificate.rawBytes", "%%%", "bundle"),
        (
            V03,
            "verificationMaterial.certificate.rawBytes",
            base64.b64encode(b"garbage certificate").decode(),
            "bundle",
        ),
        (DSSE, "dsseEnvelope.payload", 12, "bundle"),
        (DSSE, "dsseEnvelope.signatures", [], "bundle"),
    ],
)
def test_malformed_bundle_is_invalid(
    verifier: ProvenanceVerifier, relpath: str, path: str, value: Any, fragment: str
) -> None:
    fact = check(verifier, _set(bundle(relpath), path, value))
    assert fact.verification == "invalid", fact.error
    assert fragment in (fact.error or "")


def test_not_an_attestation_is_invalid(verifier: ProvenanceVerifier) -> None:
    fact = check(verifier, {"hello": "world"})
    assert fact.verification == "invalid" and fact.content == "unknown"


def test_unknown_bundle_media_type_is_unsupported(verifier: ProvenanceVerifier) -> None:
    doc = _set(bundle(V03), "mediaType", "application/vnd.dev.sigstore.bundle.v0.9+json")
    assert check(verifier, doc).verification == "unsupported"


# --- bundles that claim to be something they are not -----------------------------------


def test_both_message_signature_and_dsse_is_invalid(verifier: ProvenanceVerifier) -> None:
    doc = bundle(V03)
    doc["dsseEnvelope"] = bundle(DSSE)["dsseEnvelope"]
    assert check(verifier, doc).verification == "invalid"


def test_message_signature_dressed_as_dsse_is_never_verified(
    verifier: ProvenanceVerifier,
) -> None:
    doc = bundle(V03)
    signature = doc.pop("messageSignature")["signature"]
    doc["dsseEnvelope"] = {
        "payload": base64.b64encode(b'{"_type":"https://in-toto.io/Statement/v1"}').decode(),
        "payloadType": "application/vnd.in-toto+json",
        "signatures": [{"sig": signature}],
    }
    assert check(verifier, doc).verification == "failed"


def test_dsse_entry_relabelled_hashedrekord_fails(verifier: ProvenanceVerifier) -> None:
    doc = bundle(DSSE)
    _set(doc, "verificationMaterial.tlogEntries.0.kindVersion.kind", "hashedrekord")
    assert check(verifier, doc).verification in {"failed", "invalid"}


def test_dsse_entry_relabelled_intoto_is_unsupported(verifier: ProvenanceVerifier) -> None:
    doc = bundle(DSSE)
    _set(doc, "verificationMaterial.tlogEntries.0.kindVersion.kind", "intoto")
    _set(doc, "verificationMaterial.tlogEntries.0.kindVersion.version", "0.0.2")
    fact = check(verifier, doc)
    assert fact.verification == "unsupported" and "intoto/0.0.2" in (fact.error or "")


def test_swapped_dsse_payload_fails(verifier: ProvenanceVerifier) -> None:
    doc = bundle(DSSE)
    statement = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    statement["subject"][0]["digest"]["sha256"] = "1" * 64
    doc["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    fact = check(verifier, doc, artifact="sha256:" + "1" * 64)
    assert fact.verification == "failed"


# --- the real VSA: one changed payload byte must fail -------------------------------------


def test_vsa_with_one_payload_byte_changed_fails(verifier: ProvenanceVerifier) -> None:
    doc = bundle(VSA)
    payload = bytearray(base64.b64decode(doc["payload"]))
    payload[payload.index(b"PASSED")] = ord("F")  # "PASSED" -> "FASSED"
    doc["payload"] = base64.b64encode(bytes(payload)).decode()
    fact = check(verifier, doc)
    assert fact.verification == "failed"
    assert "no configured public key verifies" in (fact.error or "")


def test_vsa_without_configured_keys_is_unsupported() -> None:
    keyless = ProvenanceVerifier.from_settings()
    fact = check(keyless, bundle(VSA))
    assert fact.verification == "unsupported" and fact.method == "key"


def test_vsa_bad_base64_signature_is_invalid(verifier: ProvenanceVerifier) -> None:
    doc = bundle(VSA)
    doc["signatures"][0]["sig"] = "not*base64"
    fact = check(verifier, doc)
    assert fact.verification == "invalid" and "base64" in (fact.error or "")
