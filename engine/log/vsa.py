"""SLSA Verification Summary Attestations (VSA v1) for ``allow`` decisions, in DSSE.

The statement is an in-toto Statement v1 whose predicate is
``https://slsa.dev/verification_summary/v1``; the envelope is DSSE with payload type
``application/vnd.in-toto+json``, signed over PAE (``"DSSEv1" SP len(type) SP type SP
len(body) SP body``) by the service key, ``keyid`` being that key's id.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

from engine.errors import InputError
from engine.log.signing import Signer
from engine.models.common import Verdict
from engine.models.decision import Decision

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
VSA_PREDICATE_TYPE = "https://slsa.dev/verification_summary/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSE v1 Pre-Authentication Encoding."""
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(type_bytes), type_bytes, len(body), body)


def _sha256_hex(ref: object, *, what: str) -> str:
    if not isinstance(ref, str) or not ref.startswith("sha256:") or len(ref) != 71:
        raise InputError(f"{what}: expected 'sha256:<64 hex>' to build a VSA")
    return ref[len("sha256:") :]


def build_vsa_statement(
    decision: Decision,
    *,
    verifier_id: str,
    policy_uri: str,
    verified_levels: Sequence[str] = (),
) -> dict[str, Any]:
    """The in-toto Statement v1 with a VSA v1 predicate for an ``allow`` decision."""
    # 1. Only a real (not dry-run) allow is a passed verification worth attesting.
    if decision.verdict is not Verdict.ALLOW or decision.dry_run:
        raise InputError(
            f"decision {decision.decision_id}: a VSA is issued only for a non-dry-run allow"
        )
    digest = str(decision.artifact.get("digest", ""))
    artifact_hex = _sha256_hex(digest, what="artifact.digest")
    policy_hex = _sha256_hex(decision.policy.digest, what="policy.digest")
    uri = decision.artifact.get("uri")
    name = str(uri) if uri else digest
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": {"sha256": artifact_hex}}],
        "predicateType": VSA_PREDICATE_TYPE,
        "predicate": {
            "verifier": {"id": verifier_id},
            "timeVerified": decision.timestamp,
            "resourceUri": f"{uri}@{digest}" if uri else digest,
            "policy": {"uri": policy_uri, "digest": {"sha256": policy_hex}},
            "verificationResult": "PASSED",
            "verifiedLevels": list(verified_levels),
        },
    }


def build_vsa_envelope(
    decision: Decision,
    *,
    signer: Signer,
    verifier_id: str,
    policy_uri: str,
    verified_levels: Sequence[str] = (),
) -> dict[str, Any]:
    """A DSSE envelope ``{payload, payloadType, signatures: [{keyid, sig}]}`` over the VSA."""
    statement = build_vsa_statement(
        decision,
        verifier_id=verifier_id,
        policy_uri=policy_uri,
        verified_levels=verified_levels,
    )
    body = json.dumps(statement, separators=(",", ":"), sort_keys=True).encode("utf-8")
    sig = signer.sign(pae(PAYLOAD_TYPE, body))
    return {
        "payload": base64.b64encode(body).decode("ascii"),
        "payloadType": PAYLOAD_TYPE,
        "signatures": [{"keyid": signer.key_id, "sig": base64.b64encode(sig).decode("ascii")}],
    }
