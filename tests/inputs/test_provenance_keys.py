"""Key-based DSSE (cosign ``--key`` style) and in-toto / SLSA statement parsing.

Keys are generated per test run with ``cryptography``; the signatures are real.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from engine.errors import ConfigError
from engine.inputs.provenance import ProvenanceVerifier, build_provenance_section
from engine.inputs.provenance.dsse_keys import pae
from engine.models.provenance import AttestationFact

ARTIFACT = "sha256:" + hashlib.sha256(b"release artifact").hexdigest()
INTOTO = "application/vnd.in-toto+json"
PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey


def write_public(tmp_path: Path, key: PrivateKey, *, der: bool = False) -> Path:
    """Write ``key``'s public half as PEM (or DER) and return the path."""
    encoding = serialization.Encoding.DER if der else serialization.Encoding.PEM
    data = key.public_key().public_bytes(encoding, serialization.PublicFormat.SubjectPublicKeyInfo)
    path = tmp_path / ("key.der" if der else "key.pem")
    path.write_bytes(data)
    return path


def statement(
    *, statement_type: str = "https://in-toto.io/Statement/v1", **overrides: Any
) -> dict[str, Any]:
    """A SLSA v1 provenance statement about ``ARTIFACT``."""
    doc: dict[str, Any] = {
        "_type": statement_type,
        "subject": [{"name": "app", "digest": {"sha256": ARTIFACT.removeprefix("sha256:")}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": "https://example.com/build/v1",
                "externalParameters": {"source": "x"},
                "resolvedDependencies": [
                    {"uri": "git+https://git.example/o/r@refs/tags/v2", "digest": {"sha1": "ab"}}
                ],
            },
            "runDetails": {
                "builder": {"id": "https://ci.example/builder"},
                "metadata": {"startedOn": "2025-01-01T00:00:00Z"},
            },
        },
    }
    doc.update(overrides)
    return doc


def envelope(
    sign: Callable[[bytes], bytes], payload: bytes, payload_type: str = INTOTO
) -> dict[str, Any]:
    """A DSSE envelope over ``payload`` signed by ``sign(PAE)``."""
    signature = sign(pae(payload_type, payload))
    return {
        "payloadType": payload_type,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": "", "sig": base64.b64encode(signature).decode()}],
    }


def verify(verifier: ProvenanceVerifier, doc: dict[str, Any]) -> AttestationFact:
    """Verify one envelope for ``ARTIFACT``."""
    section = build_provenance_section([doc], artifact_digest=ARTIFACT, verifier=verifier)
    return section.attestations[0]


def _p256_der(key: Any) -> Callable[[bytes], bytes]:
    return lambda m: key.sign(m, ec.ECDSA(hashes.SHA256()))


def _p256_raw(key: Any) -> Callable[[bytes], bytes]:
    def sign(message: bytes) -> bytes:
        r, s = decode_dss_signature(key.sign(message, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    return sign


def _rsa_pss(key: Any) -> Callable[[bytes], bytes]:
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.MAX_LENGTH)
    return lambda m: key.sign(m, pss, hashes.SHA256())


def _rsa_pkcs1(key: Any) -> Callable[[bytes], bytes]:
    return lambda m: key.sign(m, padding.PKCS1v15(), hashes.SHA256())


KEY_CASES = [
    ("ecdsa-p256-der", lambda: ec.generate_private_key(ec.SECP256R1()), _p256_der),
    ("ecdsa-p256-raw", lambda: ec.generate_private_key(ec.SECP256R1()), _p256_raw),
    ("ed25519", ed25519.Ed25519PrivateKey.generate, lambda k: k.sign),
    ("rsa-pss", lambda: rsa.generate_private_key(65537, 2048), _rsa_pss),
    ("rsa-pkcs1", lambda: rsa.generate_private_key(65537, 2048), _rsa_pkcs1),
]


@pytest.mark.parametrize(("name", "make_key", "signer"), KEY_CASES, ids=[c[0] for c in KEY_CASES])
def test_key_signed_envelope(
    tmp_path: Path,
    name: str,
    make_key: Callable[[], PrivateKey],
    signer: Callable[[PrivateKey], Callable[[bytes], bytes]],
) -> None:
    key = make_key()
    verifier = ProvenanceVerifier.from_settings(public_keys={name: write_public(tmp_path, key)})
    payload = json.dumps(statement()).encode()
    fact = verify(verifier, envelope(signer(key), payload))
    assert fact.verification == "verified", fact.error
    assert fact.method == "key" and fact.signer is not None and fact.signer.key_id == name
    assert fact.subject_matches and fact.subject_digests == [ARTIFACT]
    # One changed payload byte, same signature: must fail.
    tampered = envelope(signer(key), payload)
    tampered["payload"] = base64.b64encode(payload.replace(b"app", b"apq")).decode()
    assert verify(verifier, tampered).verification == "failed"


def test_wrong_key_fails(tmp_path: Path) -> None:
    configured = ec.generate_private_key(ec.SECP256R1())
    other = ec.generate_private_key(ec.SECP256R1())
    verifier = ProvenanceVerifier.from_settings(
        public_keys={"release": write_public(tmp_path, configured, der=True)}
    )
    fact = verify(verifier, envelope(_p256_der(other), json.dumps(statement()).encode()))
    assert fact.verification == "failed"


def test_unnamed_key_is_identified_by_fingerprint(tmp_path: Path) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    path = write_public(tmp_path, key, der=True)
    verifier = ProvenanceVerifier.from_settings(public_keys={"": path})
    fact = verify(verifier, envelope(key.sign, json.dumps(statement()).encode()))
    assert fact.signer is not None
    assert fact.signer.key_id == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def test_bad_key_file_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "key.pem"
    bad.write_text("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
    with pytest.raises(ConfigError, match="key.pem"):
        ProvenanceVerifier.from_settings(public_keys={"k": bad})
    with pytest.raises(ConfigError):
        ProvenanceVerifier.from_settings(public_keys={"k": tmp_path / "missing.pem"})


def test_bad_trusted_root_is_a_config_error(tmp_path: Path) -> None:
    root = tmp_path / "root.json"
    root.write_text('{"mediaType": "nope"}')
    with pytest.raises(ConfigError, match="trusted root"):
        ProvenanceVerifier.from_settings(root)


# --- statements, through a verified key signature -----------------------------------------

ED = ed25519.Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def ed_verifier(tmp_path_factory: pytest.TempPathFactory) -> ProvenanceVerifier:
    """A verifier trusting the module's Ed25519 key."""
    return ProvenanceVerifier.from_settings(
        public_keys={"ed": write_public(tmp_path_factory.mktemp("k"), ED)}
    )


def signed(doc: Any, payload_type: str = INTOTO) -> dict[str, Any]:
    """An envelope over ``doc`` (JSON-encoded unless bytes) signed with ``ED``."""
    payload = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return envelope(ED.sign, payload, payload_type)


def test_statement_v01_with_slsa_v02(ed_verifier: ProvenanceVerifier) -> None:
    doc = statement(
        statement_type="https://in-toto.io/Statement/v0.1",
        predicateType="https://slsa.dev/provenance/v0.2",
        predicate={
            "builder": {"id": "https://ci.example/b"},
            "buildType": "https://ci.example/t",
            "invocation": {
                "configSource": {
                    "uri": "git+https://git.example/o/r@refs/heads/main",
                    "digest": {"sha1": "cafe"},
                    "entryPoint": "build.yml",
                }
            },
            "metadata": {"buildStartedOn": "s", "buildFinishedOn": "f"},
        },
    )
    fact = verify(ed_verifier, signed(doc))
    assert fact.verification == "verified", fact.error
    assert fact.slsa is not None
    assert fact.slsa.model_dump() == {
        "version": "v0.2",
        "build_type": "https://ci.example/t",
        "builder_id": "https://ci.example/b",
        "source_repository": "https://git.example/o/r",
        "source_ref": "refs/heads/main",
        "source_commit": "cafe",
        "started_on": "s",
        "finished_on": "f",
    }


def test_slsa_v1_from_resolved_dependencies(ed_verifier: ProvenanceVerifier) -> None:
    fact = verify(ed_verifier, signed(statement()))
    assert fact.slsa is not None
    assert (fact.slsa.source_repository, fact.slsa.source_ref, fact.slsa.source_commit) == (
        "https://git.example/o/r",
        "refs/tags/v2",
        "ab",
    )
    assert fact.slsa.started_on == "2025-01-01T00:00:00Z"


def test_other_predicate_is_verified_without_slsa_facts(ed_verifier: ProvenanceVerifier) -> None:
    doc = statement(predicateType="https://spdx.dev/Document", predicate={"spdxVersion": "2.3"})
    fact = verify(ed_verifier, signed(doc))
    assert fact.verification == "verified" and fact.slsa is None and fact.vsa is None


@pytest.mark.parametrize(
    ("doc", "payload_type", "want", "fragment"),
    [
        (statement(), "text/plain", "unsupported", "not in-toto"),
        (statement(statement_type="https://in-toto.io/Statement/v9"), INTOTO, "unsupported", "v9"),
        (b"{not json", INTOTO, "invalid", "not valid JSON"),
        ([1, 2], INTOTO, "invalid", "expected a JSON object"),
        (statement(subject=[]), INTOTO, "invalid", "must not be empty"),
        (statement(subject="app"), INTOTO, "invalid", "statement.subject: expected an array"),
        (statement(subject=[{"digest": {"sha256": "xyz"}}]), INTOTO, "invalid", "64 hex"),
        (statement(subject=[{"digest": {"sha256": 5}}]), INTOTO, "invalid", "expected a string"),
        (statement(predicateType=7), INTOTO, "invalid", "predicateType"),
        (statement(predicate={"buildDefinition": []}), INTOTO, "invalid", "buildDefinition"),
        (
            statement(predicate={"buildDefinition": {}, "runDetails": {"builder": {"id": 1}}}),
            INTOTO,
            "invalid",
            "buildType",
        ),
        (
            statement(
                predicateType="https://slsa.dev/verification_summary/v1",
                predicate={
                    "verifier": {"id": "v"},
                    "verificationResult": "PASSED",
                    "verifiedLevels": [1],
                },
            ),
            INTOTO,
            "invalid",
            "verifiedLevels",
        ),
    ],
)
def test_statement_that_is_not_what_it_claims(
    ed_verifier: ProvenanceVerifier, doc: Any, payload_type: str, want: str, fragment: str
) -> None:
    fact = verify(ed_verifier, signed(doc, payload_type))
    assert fact.verification == want, fact.error
    assert fragment in (fact.error or "")
    assert fact.slsa is None and fact.vsa is None and not fact.subject_matches


def test_uppercase_and_duplicate_subject_digests_are_normalized(
    ed_verifier: ProvenanceVerifier,
) -> None:
    hex_digest = ARTIFACT.removeprefix("sha256:")
    doc = statement(
        subject=[
            {"name": "a", "digest": {"sha256": hex_digest.upper()}},
            {"name": "b", "digest": {"sha256": hex_digest, "sha512": "00"}},
        ]
    )
    fact = verify(ed_verifier, signed(doc))
    assert fact.subject_digests == [ARTIFACT] and fact.subject_matches
