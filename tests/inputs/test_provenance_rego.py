"""Facts from real bundles, judged by the real ``releasegate.provenance`` Rego with real OPA.

Checks the contract between this package and the policy: the reason codes of contract §2
come out of facts this package produces (identity trust is decided only here, in Rego).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from engine.engines.opa import find_opa
from engine.inputs.provenance import (
    ProvenanceVerifier,
    build_provenance_section,
    load_attestation_file,
)

pytestmark = pytest.mark.opa

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / "tests" / "assets" / "sigstore"
POLICY = ROOT / "policies" / "releasegate"
GHA = "https://token.actions.githubusercontent.com"
BCR_SIGNER = "https://github.com/bazel-contrib/publish-to-bcr/.github/workflows/publish.yaml@*"
CONFIG = {
    "provenance": {
        "required": {"*": True},
        "trusted_identities": {
            "rules_lint": [
                {
                    "issuer": GHA,
                    "san": BCR_SIGNER,
                    "source_repository": "https://github.com/aspect-build/*",
                }
            ],
            "attest": [{"issuer": GHA, "san": "https://github.com/too-legit/*"}],
            "*": [{"issuer": GHA}],
        },
    }
}


def digest_of(relpath: str) -> str:
    """``sha256:<hex>`` of a test asset."""
    return "sha256:" + hashlib.sha256((ASSETS / relpath).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def verifier() -> ProvenanceVerifier:
    """The packaged public-good root."""
    return ProvenanceVerifier.from_settings()


def findings(
    tmp_path: Path, verifier: ProvenanceVerifier, service: str, relpath: str, artifact: str
) -> set[str]:
    """Reason codes ``releasegate.provenance`` gives for one real bundle."""
    section = build_provenance_section(
        load_attestation_file(ASSETS / relpath), artifact_digest=artifact, verifier=verifier
    )
    doc: dict[str, Any] = {
        "release": {"service": service, "environment": "prod", "stage": "deploy"},
        "artifact": {"digest": artifact},
        "provenance": section.model_dump(mode="json"),
    }
    (tmp_path / "input.json").write_text(json.dumps(doc))
    (tmp_path / "data.json").write_text(json.dumps({"releasegate": {"config": CONFIG}}))
    argv = [
        str(find_opa()),
        "eval",
        "--format=json",
        "--data",
        str(POLICY / "lib.rego"),
        "--data",
        str(POLICY / "provenance.rego"),
        "--data",
        str(tmp_path / "data.json"),
        "--input",
        str(tmp_path / "input.json"),
        "data.releasegate.provenance.findings",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    [result] = json.loads(done.stdout)["result"]
    return {f["code"] for f in result["expressions"][0]["value"]}


def test_trusted_verified_provenance_has_no_findings(
    tmp_path: Path, verifier: ProvenanceVerifier
) -> None:
    artifact = digest_of("slsa-verifier/bcr/MODULE.bazel")
    got = findings(
        tmp_path, verifier, "rules_lint", "slsa-verifier/bcr/MODULE.bazel.intoto.jsonl", artifact
    )
    assert got == set()


def test_custom_issuer_is_an_identity_mismatch_when_only_gha_is_trusted(
    tmp_path: Path, verifier: ProvenanceVerifier
) -> None:
    artifact = digest_of("gh-cli/custom-issuer-artifact")
    relpath = "gh-cli/custom-issuer.sigstore.json"
    assert findings(tmp_path, verifier, "attest", relpath, artifact) == {
        "identity_mismatch",
        "provenance_missing",
    }


def test_failed_bundle_is_signature_invalid(tmp_path: Path, verifier: ProvenanceVerifier) -> None:
    relpath = "conformance/dsse-invalid-sig_fail/bundle.sigstore.json"
    got = findings(tmp_path, verifier, "svc", relpath, digest_of("conformance/a.txt"))
    assert got == {"signature_invalid", "provenance_missing"}


def test_intoto_002_entry_is_attestation_unsupported(
    tmp_path: Path, verifier: ProvenanceVerifier
) -> None:
    relpath = "slsa-verifier/gha_delegator-v2.1.0/binary-linux-amd64-push-v14.build.slsa"
    artifact = digest_of("slsa-verifier/gha_delegator-v2.1.0/binary-linux-amd64-push-v14")
    got = findings(tmp_path, verifier, "svc", relpath, artifact)
    assert got == {"attestation_unsupported", "provenance_missing"}


def test_other_artifact_is_subject_mismatch(tmp_path: Path, verifier: ProvenanceVerifier) -> None:
    relpath = "conformance/happy-path-intoto-in-dsse-v3/bundle.sigstore.json"
    got = findings(tmp_path, verifier, "svc", relpath, "sha256:" + "0" * 64)
    assert got == {"subject_mismatch", "provenance_missing"}
