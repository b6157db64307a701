"""Real documents the fuzzers start from: corpus bundles, statements and scanner reports.

All of them are the committed copies under ``tests/assets`` (sources in
``tests/assets/SOURCES.md``); nothing here is invented except the AdmissionReview and the
Flagger payload, whose shapes follow the Kubernetes and Flagger documentation.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "tests" / "assets"
SIGSTORE = ASSETS / "sigstore"
SCANNERS = ASSETS / "scanners"
CONFORMANCE = SIGSTORE / "conformance"
ARTIFACT_DIGEST = "sha256:" + hashlib.sha256((CONFORMANCE / "a.txt").read_bytes()).hexdigest()
VSA_KEY = SIGSTORE / "slsa-verifier" / "vsa" / "vsa_signing_public_key.pem"

SCAN_SEEDS: dict[str, tuple[str, Path]] = {
    "trivy": ("trivy", SCANNERS / "trivy" / "alpine-39.trivy.json"),
    "grype": ("grype", SCANNERS / "grype" / "TestJsonImgsPresenter.grype.json"),
    "sarif": ("sarif", SCANNERS / "trivy" / "alpine-310.trivy.sarif"),
    "cyclonedx": ("cyclonedx", SCANNERS / "trivy" / "npm.trivy.cdx.json"),
    "osv": ("osv", SCANNERS / "osv-scanner" / "test-vuln-results-a.osv-scanner.json"),
    "openvex": ("openvex", SCANNERS / "trivy" / "trivy-project.openvex.json"),
}
"""Parser name -> (declared format, corpus report)."""


def load_json(path: Path) -> Any:
    """A JSON document (or the first line of a JSON Lines file)."""
    text = path.read_text()
    if path.name.endswith((".jsonl", ".build.slsa")):
        text = text.splitlines()[0]
    return json.loads(text)


def sigstore_bundle() -> dict[str, Any]:
    """The conformance DSSE bundle (in-toto v1, SLSA v1) over ``a.txt``: verifies."""
    return dict(load_json(CONFORMANCE / "happy-path-intoto-in-dsse-v3" / "bundle.sigstore.json"))


def message_signature_bundle() -> dict[str, Any]:
    """The conformance v0.3 message-signature bundle over ``a.txt``: verifies."""
    return dict(load_json(CONFORMANCE / "happy-path-v0.3" / "bundle.sigstore.json"))


def dsse_envelope() -> dict[str, Any]:
    """The real Google BCID VSA: a key-signed DSSE envelope (verifies with VSA_KEY)."""
    return dict(load_json(SIGSTORE / "slsa-verifier" / "vsa" / "gke-gce-pre.bcid-vsa.jsonl"))


def _payload(bundle: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"])))


def intoto_statement() -> dict[str, Any]:
    """The in-toto Statement v1 inside the conformance DSSE bundle."""
    return _payload(sigstore_bundle())


def slsa_v02_statement() -> dict[str, Any]:
    """The Statement v0.1 + SLSA provenance v0.2 of slsa-github-generator v2.1.0."""
    path = (
        SIGSTORE
        / "slsa-verifier"
        / "gha_generic-v2.1.0"
        / "binary-linux-amd64-push-v14.intoto.jsonl"
    )
    return _payload(dict(load_json(path)))


def scan_report(parser: str) -> dict[str, Any]:
    """The corpus report a scan parser is fuzzed from."""
    return dict(load_json(SCAN_SEEDS[parser][1]))


def admission_review() -> dict[str, Any]:
    """An ``admission.k8s.io/v1`` AdmissionReview creating a Deployment with a pinned image."""
    gvk = {"group": "apps", "version": "v1", "kind": "Deployment"}
    image = f"ghcr.io/acme/payments@{ARTIFACT_DIGEST}"
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.UUID(int=7)),
            "kind": gvk,
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "requestKind": gvk,
            "name": "payments",
            "namespace": "payments",
            "operation": "CREATE",
            "userInfo": {"username": "alice@example.com", "groups": ["system:authenticated"]},
            "object": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {
                    "name": "payments",
                    "namespace": "payments",
                    "labels": {"app.kubernetes.io/name": "payments"},
                },
                "spec": {
                    "template": {
                        "metadata": {"labels": {"app.kubernetes.io/version": "1.4.2"}},
                        "spec": {
                            "initContainers": [{"name": "init", "image": "busybox:1.36"}],
                            "containers": [{"name": "app", "image": image}],
                        },
                    }
                },
            },
            "dryRun": False,
        },
    }


def flagger_payload() -> dict[str, Any]:
    """A Flagger ``CanaryWebhookPayload`` with releasegate metadata."""
    return {
        "name": "payments",
        "namespace": "prod",
        "phase": "Progressing",
        "checksum": "6d4f9b6c7",
        "metadata": {
            "release_id": "payments-1.4.2",
            "service": "payments",
            "environment": "prod",
            "artifact_digest": ARTIFACT_DIGEST,
        },
    }


def decision_request(environment: str = "dev") -> dict[str, Any]:
    """A ``POST /v1/decisions`` body with the verifiable conformance bundle."""
    return {
        "release": {
            "id": "payments-1.4.2",
            "service": "payments",
            "environment": environment,
            "stage": "deploy",
            "requested_by": "alice@example.com",
        },
        "artifact": {"uri": "ghcr.io/acme/payments", "digest": ARTIFACT_DIGEST},
        "evidence": {"attestations": [sigstore_bundle()]},
    }
