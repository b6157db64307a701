"""SLSA VSA v1 in DSSE, verified by an independent DSSE implementation (securesystemslib)."""

from __future__ import annotations

import base64
import copy
import json

import pytest
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import SSlibKey

from engine.errors import InputError
from engine.log.signing import Ed25519Signer
from engine.log.vsa import PAYLOAD_TYPE, VSA_PREDICATE_TYPE, build_vsa_envelope, pae
from tests.log.helpers import make_decision


def _verifier_key(signer: Ed25519Signer) -> SSlibKey:
    return SSlibKey.from_crypto(signer.public_key, keyid=signer.key_id)


def test_vsa_envelope_verifies_with_securesystemslib() -> None:
    signer = Ed25519Signer.generate()
    decision = make_decision(7)
    envelope = build_vsa_envelope(
        decision,
        signer=signer,
        verifier_id="https://releasegate.example/verifier",
        policy_uri="https://releasegate.example/bundles/r1",
        verified_levels=["SLSA_BUILD_LEVEL_3"],
    )
    parsed = Envelope.from_dict(copy.deepcopy(envelope))
    accepted = parsed.verify([_verifier_key(signer)], 1)
    assert list(accepted) == [signer.key_id]
    statement = json.loads(parsed.pae().split(b" ", 4)[4])
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == VSA_PREDICATE_TYPE
    assert statement["subject"] == [
        {"name": "ghcr.io/acme/payments", "digest": {"sha256": "ab" * 32}}
    ]
    predicate = statement["predicate"]
    assert predicate["verifier"] == {"id": "https://releasegate.example/verifier"}
    assert predicate["timeVerified"] == decision.timestamp
    assert predicate["resourceUri"] == "ghcr.io/acme/payments@sha256:" + "ab" * 32
    assert predicate["policy"] == {
        "uri": "https://releasegate.example/bundles/r1",
        "digest": {"sha256": "cd" * 32},
    }
    assert predicate["verificationResult"] == "PASSED"
    assert predicate["verifiedLevels"] == ["SLSA_BUILD_LEVEL_3"]
    assert parsed.pae() == pae(PAYLOAD_TYPE, base64.b64decode(envelope["payload"]))


def test_vsa_signature_by_another_key_or_altered_payload_fails() -> None:
    signer = Ed25519Signer.generate()
    envelope = build_vsa_envelope(make_decision(), signer=signer, verifier_id="v", policy_uri="p")
    assert json.loads(base64.b64decode(envelope["payload"]))["predicate"]["verifiedLevels"] == []
    with pytest.raises(VerificationError):
        Envelope.from_dict(copy.deepcopy(envelope)).verify(
            [_verifier_key(Ed25519Signer.generate())], 1
        )
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["predicate"]["verificationResult"] = "FAILED"
    altered = dict(envelope, payload=base64.b64encode(json.dumps(statement).encode()).decode())
    with pytest.raises(VerificationError):
        Envelope.from_dict(copy.deepcopy(altered)).verify([_verifier_key(signer)], 1)


@pytest.mark.parametrize(
    "kwargs", [{"verdict": "pause"}, {"verdict": "rollback"}, {"dry_run": True}]
)
def test_no_vsa_for_anything_but_a_real_allow(kwargs: dict[str, object]) -> None:
    with pytest.raises(InputError, match="only for a non-dry-run allow"):
        build_vsa_envelope(
            make_decision(**kwargs),
            signer=Ed25519Signer.generate(),  # type: ignore[arg-type]
            verifier_id="v",
            policy_uri="p",
        )
