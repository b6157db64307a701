"""Every Sigstore / SLSA corpus bundle gives the result MANIFEST.md measured with sigstore 4.5.1."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from engine.inputs.provenance import (
    ProvenanceVerifier,
    build_provenance_section,
    load_attestation_file,
)
from engine.models.common import SectionStatus
from engine.models.provenance import AttestationFact

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "sigstore"
GHA = "https://token.actions.githubusercontent.com"
BEACON = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
GENERIC_SUBJECT = "sha256:376e7e01348585b6e6643bc6663146b9d525d9b41228bf180eaeb4d4a3706caa"
OTHER_DIGEST = "sha256:" + "0" * 64


def digest_of(relpath: str) -> str:
    """``sha256:<hex>`` of a test asset."""
    return "sha256:" + hashlib.sha256((ASSETS / relpath).read_bytes()).hexdigest()


A_TXT = digest_of("conformance/a.txt")


@pytest.fixture(scope="module")
def verifier() -> ProvenanceVerifier:
    """The production (public-good) root shipped as package data, plus the VSA key."""
    return ProvenanceVerifier.from_settings(
        public_keys={"bcid-vsa": ASSETS / "slsa-verifier/vsa/vsa_signing_public_key.pem"}
    )


def verify_file(verifier: ProvenanceVerifier, relpath: str, artifact: str) -> AttestationFact:
    """Load one attestation file and verify its single bundle."""
    bundles = load_attestation_file(ASSETS / relpath)
    assert len(bundles) == 1
    section = build_provenance_section(bundles, artifact_digest=artifact, verifier=verifier)
    assert section.status is SectionStatus.OK
    return section.attestations[0]


# (file, artifact digest, expected verification, expected error fragment) — MANIFEST.md §2-5.
MANIFEST = [
    ("conformance/happy-path-v0.3/bundle.sigstore.json", A_TXT, "verified", None),
    ("conformance/happy-path-v0.1/bundle.sigstore.json", A_TXT, "verified", None),
    ("conformance/happy-path-intoto-in-dsse-v3/bundle.sigstore.json", A_TXT, "verified", None),
    (
        "conformance/dsse-invalid-sig_fail/bundle.sigstore.json",
        A_TXT,
        "failed",
        "DSSE: invalid signature",
    ),
    (
        "conformance/dsse-mismatch-envelope_fail/bundle.sigstore.json",
        A_TXT,
        "failed",
        "log entry payload hash does not match bundle",
    ),
    (
        "conformance/signature-mismatch_fail/bundle.sigstore.json",
        A_TXT,
        "failed",
        "Signature is invalid for input",
    ),
    (
        "conformance/message-digest-mismatch_fail/bundle.sigstore.json",
        A_TXT,
        "failed",
        "Bundle message digest mismatch",
    ),
    (
        "conformance/set-invalid-signature_fail/bundle.sigstore.json",
        A_TXT,
        "failed",
        "invalid log entry: SET: invalid inclusion promise",
    ),
    (
        "conformance/bundle-from-wrong-instance_fail/bundle.sigstore.json",
        A_TXT,
        "failed",
        "failed to build timestamp certificate chain",
    ),
    (
        "conformance/rekor2-dsse-happy-path/bundle.sigstore.json",
        A_TXT,
        "failed",
        "not enough sources of verified time",
    ),
    (
        "slsa-verifier/bcr/MODULE.bazel.intoto.jsonl",
        digest_of("slsa-verifier/bcr/MODULE.bazel"),
        "verified",
        None,
    ),
    (
        "slsa-verifier/gha_generic-v2.1.0/binary-linux-amd64-push-v14.intoto.jsonl",
        GENERIC_SUBJECT,
        "verified",
        None,
    ),
    (
        "slsa-verifier/gha_delegator-v2.1.0/binary-linux-amd64-push-v14.build.slsa",
        digest_of("slsa-verifier/gha_delegator-v2.1.0/binary-linux-amd64-push-v14"),
        "unsupported",
        "intoto/0.0.2",
    ),
    (
        "gh-cli/reusable-workflow-attestation.sigstore.json",
        digest_of("gh-cli/reusable-workflow-artifact"),
        "verified",
        None,
    ),
    (
        "gh-cli/custom-issuer.sigstore.json",
        digest_of("gh-cli/custom-issuer-artifact"),
        "verified",
        None,
    ),
    (
        "sigstore-python/bundle_v3_github.whl.sigstore",
        digest_of("sigstore-python/bundle_v3_github.whl"),
        "verified",
        None,
    ),
    ("slsa-verifier/vsa/gke-gce-pre.bcid-vsa.jsonl", A_TXT, "verified", None),
]


@pytest.mark.parametrize(("relpath", "artifact", "want", "message"), MANIFEST)
def test_manifest_result(
    verifier: ProvenanceVerifier, relpath: str, artifact: str, want: str, message: str | None
) -> None:
    fact = verify_file(verifier, relpath, artifact)
    assert fact.verification == want, fact.error
    if want == "verified":
        assert fact.error is None
        assert fact.signer is not None
    else:
        assert message is not None and fact.error is not None
        assert message in fact.error
        # Nothing only a verified attestation may assert leaks into a rejected fact.
        assert fact.signer is None and fact.slsa is None and not fact.subject_matches


def test_packaged_root_is_the_pinned_public_good_root() -> None:
    data = Path(__file__).resolve().parents[2] / "engine" / "data" / "trusted_root.json"
    assert hashlib.sha256(data.read_bytes()).hexdigest().startswith("6494e21e")


def test_rekor_v2_staging_bundle_passes_with_its_own_root() -> None:
    staging = ProvenanceVerifier.from_settings(
        ASSETS / "conformance/rekor2-dsse-happy-path/trusted_root.json"
    )
    fact = verify_file(staging, "conformance/rekor2-dsse-happy-path/bundle.sigstore.json", A_TXT)
    assert fact.verification == "verified", fact.error
    assert fact.content == "dsse" and fact.subject_matches
    assert fact.integrated_time is None  # Rekor v2: time comes from the RFC 3161 timestamp
    assert fact.slsa is not None and fact.slsa.version == "v1"
    assert fact.signer is not None and fact.signer.san == BEACON


def test_production_bundle_fails_against_the_staging_root() -> None:
    staging = ProvenanceVerifier.from_settings(
        ASSETS / "conformance/rekor2-dsse-happy-path/trusted_root.json"
    )
    fact = verify_file(staging, "conformance/happy-path-v0.3/bundle.sigstore.json", A_TXT)
    assert fact.verification == "failed"


def test_conformance_identity_facts(verifier: ProvenanceVerifier) -> None:
    for relpath in ("happy-path-v0.3", "happy-path-v0.1", "happy-path-intoto-in-dsse-v3"):
        fact = verify_file(verifier, f"conformance/{relpath}/bundle.sigstore.json", A_TXT)
        assert fact.signer is not None
        assert (fact.signer.san, fact.signer.issuer) == (BEACON, GHA)
        assert fact.signer.source_repository_uri == (
            "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon"
        )
        assert fact.signer.source_repository_ref == "refs/heads/main"
        assert fact.subject_digests == [A_TXT] and fact.subject_matches


def test_message_signature_facts(verifier: ProvenanceVerifier) -> None:
    fact = verify_file(verifier, "conformance/happy-path-v0.3/bundle.sigstore.json", A_TXT)
    assert fact.content == "message_signature" and fact.method == "sigstore"
    assert fact.media_type == "application/vnd.dev.sigstore.bundle+json;version=0.3"
    assert fact.integrated_time is not None and fact.integrated_time.startswith("2024-03-19")
    v01 = verify_file(verifier, "conformance/happy-path-v0.1/bundle.sigstore.json", A_TXT)
    assert v01.media_type == "application/vnd.dev.sigstore.bundle+json;version=0.1"
    assert v01.integrated_time is not None and v01.integrated_time.startswith("2023-07-12")


def test_message_signature_for_another_artifact_fails(verifier: ProvenanceVerifier) -> None:
    fact = verify_file(verifier, "conformance/happy-path-v0.3/bundle.sigstore.json", OTHER_DIGEST)
    assert fact.verification == "failed"
    assert fact.error is not None and "digest mismatch" in fact.error


def test_dsse_subject_mismatch(verifier: ProvenanceVerifier) -> None:
    relpath = "conformance/happy-path-intoto-in-dsse-v3/bundle.sigstore.json"
    fact = verify_file(verifier, relpath, OTHER_DIGEST)
    assert fact.verification == "verified"
    assert fact.subject_digests == [A_TXT]
    assert fact.subject_matches is False


def test_dsse_v1_provenance_facts(verifier: ProvenanceVerifier) -> None:
    relpath = "conformance/happy-path-intoto-in-dsse-v3/bundle.sigstore.json"
    fact = verify_file(verifier, relpath, A_TXT)
    assert fact.payload_type == "application/vnd.in-toto+json"
    assert fact.statement_type == "https://in-toto.io/Statement/v1"
    assert fact.predicate_type == "https://slsa.dev/provenance/v1"
    assert fact.slsa is not None
    assert fact.slsa.build_type == "https://actions.github.io/buildtypes/workflow/v1"
    assert fact.slsa.builder_id == (
        "https://github.com/loosebazooka/aa-test/.github/workflows/provenance.yaml@refs/heads/main"
    )


def test_bcr_v1_provenance(verifier: ProvenanceVerifier) -> None:
    artifact = digest_of("slsa-verifier/bcr/MODULE.bazel")
    assert artifact.startswith("sha256:06ce3309")
    fact = verify_file(verifier, "slsa-verifier/bcr/MODULE.bazel.intoto.jsonl", artifact)
    assert fact.subject_matches and fact.subject_digests == [artifact]
    assert fact.signer is not None
    assert fact.signer.san == (
        "https://github.com/bazel-contrib/publish-to-bcr/.github/workflows/publish.yaml"
        "@refs/tags/v0.0.1"
    )
    assert fact.signer.issuer == GHA
    assert fact.signer.source_repository_uri == "https://github.com/aspect-build/rules_lint"
    assert fact.signer.runner_environment == "github-hosted"
    assert fact.signer.build_trigger == "workflow_dispatch"
    slsa = fact.slsa
    assert slsa is not None and slsa.version == "v1"
    assert slsa.builder_id == fact.signer.san
    assert slsa.source_repository == "https://github.com/aspect-build/rules_lint"
    assert slsa.source_ref == "refs/heads/publish-to-bcr"
    assert slsa.source_commit == "8f70009fde0c94ade6ce2a054b94718c819126ec"


def test_generic_generator_v02_provenance(verifier: ProvenanceVerifier) -> None:
    relpath = "slsa-verifier/gha_generic-v2.1.0/binary-linux-amd64-push-v14.intoto.jsonl"
    fact = verify_file(verifier, relpath, GENERIC_SUBJECT)
    assert fact.statement_type == "https://in-toto.io/Statement/v0.1"
    assert fact.predicate_type == "https://slsa.dev/provenance/v0.2"
    assert fact.subject_matches
    slsa = fact.slsa
    assert slsa is not None and slsa.version == "v0.2"
    assert slsa.build_type == "https://github.com/slsa-framework/slsa-github-generator/generic@v1"
    assert slsa.builder_id == (
        "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/"
        "generator_generic_slsa3.yml@refs/tags/v2.1.0"
    )
    assert slsa.source_repository == "https://github.com/slsa-framework/example-package"
    assert slsa.source_ref == "refs/tags/v14"
    assert slsa.source_commit is not None and len(slsa.source_commit) == 40
    assert fact.signer is not None and fact.signer.source_repository_ref == "refs/tags/v14"


def test_custom_issuer(verifier: ProvenanceVerifier) -> None:
    artifact = digest_of("gh-cli/custom-issuer-artifact")
    fact = verify_file(verifier, "gh-cli/custom-issuer.sigstore.json", artifact)
    assert fact.signer is not None
    assert fact.signer.issuer == "https://token.actions.githubusercontent.com/hammer-time"
    assert fact.signer.san == (
        "https://github.com/too-legit/attest/.github/workflows/integration.yml@refs/heads/main"
    )
    assert fact.subject_matches


def test_reusable_workflow_identity(verifier: ProvenanceVerifier) -> None:
    artifact = digest_of("gh-cli/reusable-workflow-artifact")
    fact = verify_file(verifier, "gh-cli/reusable-workflow-attestation.sigstore.json", artifact)
    assert fact.signer is not None
    assert fact.signer.san == (
        "https://github.com/github/artifact-attestations-workflows/.github/workflows/"
        "attest.yml@09b495c3f12c7881b3cc17209a327792065c1a1d"
    )
    assert fact.signer.source_repository_uri == "https://github.com/malancas/attest-demo"
    assert fact.slsa is not None
    assert fact.slsa.builder_id == "https://github.com/actions/runner/github-hosted"
    assert fact.subject_matches


def test_python_wheel_signature(verifier: ProvenanceVerifier) -> None:
    artifact = digest_of("sigstore-python/bundle_v3_github.whl")
    fact = verify_file(verifier, "sigstore-python/bundle_v3_github.whl.sigstore", artifact)
    assert fact.media_type == "application/vnd.dev.sigstore.bundle+json;version=0.2"
    assert fact.signer is not None
    assert fact.signer.san == (
        "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2"
    )
    assert fact.signer.source_repository_ref == "refs/tags/v0.1.2"
    assert fact.signer.build_trigger == "release"
    assert fact.subject_matches


def test_vsa_verifies_with_its_key(verifier: ProvenanceVerifier) -> None:
    fact = verify_file(verifier, "slsa-verifier/vsa/gke-gce-pre.bcid-vsa.jsonl", A_TXT)
    assert fact.method == "key" and fact.signer is not None
    assert fact.signer.key_id == "bcid-vsa" and fact.signer.san is None
    assert fact.predicate_type == "https://slsa.dev/verification_summary/v1"
    assert fact.subject_digests == []  # the subject digest is a gce_image_id, not sha256
    vsa = fact.vsa
    assert vsa is not None
    assert vsa.verifier_id == "https://bcid.corp.google.com/verifier/bcid_package_enforcer/v0.1"
    assert vsa.time_verified == "2024-06-12T07:24:34.351608Z"
    assert vsa.verification_result == "PASSED"
    assert vsa.verified_levels == ["BCID_L1", "SLSA_BUILD_LEVEL_2"]
    assert vsa.resource_uri is not None and vsa.resource_uri.startswith("gce_image://")
    assert vsa.policy_uri is not None and vsa.policy_uri.startswith("googlefile:/")


def test_empty_attestations_are_missing(verifier: ProvenanceVerifier) -> None:
    section = build_provenance_section([], artifact_digest=A_TXT, verifier=verifier)
    assert section.status is SectionStatus.MISSING and section.attestations == []


def test_one_fact_per_attestation_in_order(verifier: ProvenanceVerifier) -> None:
    bundles = [
        *load_attestation_file(ASSETS / "conformance/happy-path-v0.3/bundle.sigstore.json"),
        *load_attestation_file(ASSETS / "conformance/dsse-invalid-sig_fail/bundle.sigstore.json"),
    ]
    section = build_provenance_section(bundles, artifact_digest=A_TXT, verifier=verifier)
    assert [(f.index, f.verification) for f in section.attestations] == [
        (0, "verified"),
        (1, "failed"),
    ]
