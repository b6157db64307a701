"""Verification is offline, leaves HOME alone, and caches results by (bundle, trust, artifact)."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.inputs.provenance import (
    ProvenanceVerifier,
    VerificationCache,
    build_provenance_section,
    load_attestation_file,
)
from engine.inputs.provenance.identity import RecordIdentityOnly, signer_facts

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "sigstore"
A_TXT = "sha256:" + hashlib.sha256((ASSETS / "conformance/a.txt").read_bytes()).hexdigest()
ALL_BUNDLES = sorted(
    p
    for p in ASSETS.rglob("*")
    if p.name.endswith((".sigstore.json", ".sigstore", ".jsonl", ".build.slsa"))
)


class NetworkUsed(AssertionError):
    """Raised by the patched socket layer."""


@pytest.fixture
def no_network_no_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """Forbid sockets and DNS; point HOME and XDG dirs at an empty temporary directory."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise NetworkUsed(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME"):
        monkeypatch.setenv(var, str(home / var.lower()))
    yield home


def test_the_socket_guard_works(no_network_no_home: Path) -> None:
    with pytest.raises(NetworkUsed):
        socket.getaddrinfo("rekor.sigstore.dev", 443)


def test_verification_is_offline_and_writes_nothing_to_home(no_network_no_home: Path) -> None:
    verifier = ProvenanceVerifier.from_settings(
        public_keys={"vsa": ASSETS / "slsa-verifier/vsa/vsa_signing_public_key.pem"}
    )
    outcomes: set[str] = set()
    for path in ALL_BUNDLES:
        section = build_provenance_section(
            load_attestation_file(path), artifact_digest=A_TXT, verifier=verifier
        )
        outcomes.update(f.verification for f in section.attestations)
    assert outcomes == {"verified", "failed", "unsupported"}
    assert list(no_network_no_home.iterdir()) == []


def test_fresh_process_writes_nothing_to_home(tmp_path: Path) -> None:
    """Import and verify in a new interpreter whose HOME is empty, sockets refused."""
    home = tmp_path / "home"
    home.mkdir()
    bundle_path = ASSETS / "conformance/happy-path-v0.3/bundle.sigstore.json"
    script = textwrap.dedent(
        f"""
        import socket
        def refuse(*a, **k):
            raise SystemExit("network access attempted")
        socket.socket.connect = refuse
        socket.getaddrinfo = refuse
        from pathlib import Path
        from engine.inputs.provenance import (
            ProvenanceVerifier, build_provenance_section, load_attestation_file)
        v = ProvenanceVerifier.from_settings()
        bundles = load_attestation_file(Path({str(bundle_path)!r}))
        s = build_provenance_section(bundles, artifact_digest={A_TXT!r}, verifier=v)
        assert s.attestations[0].verification == "verified", s.attestations[0].error
        print("ok")
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
    env["HOME"] = str(home)
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
    assert list(home.iterdir()) == []


def test_cache_hits_and_misses() -> None:
    verifier = ProvenanceVerifier.from_settings()
    bundles = load_attestation_file(ASSETS / "conformance/happy-path-v0.3/bundle.sigstore.json")
    failing = load_attestation_file(
        ASSETS / "conformance/dsse-invalid-sig_fail/bundle.sigstore.json"
    )
    first = build_provenance_section(bundles + failing, artifact_digest=A_TXT, verifier=verifier)
    assert (verifier.cache_stats.hits, verifier.cache_stats.misses) == (0, 2)
    second = build_provenance_section(bundles + failing, artifact_digest=A_TXT, verifier=verifier)
    assert (verifier.cache_stats.hits, verifier.cache_stats.misses) == (2, 2)
    assert second == first
    # Another artifact digest is another key (and fails: the signature covers a.txt).
    other = build_provenance_section(
        bundles, artifact_digest="sha256:" + "0" * 64, verifier=verifier
    )
    assert other.attestations[0].verification == "failed"
    assert (verifier.cache_stats.hits, verifier.cache_stats.misses) == (2, 3)
    # The same bundle at another index keeps its own index.
    again = build_provenance_section(failing + bundles, artifact_digest=A_TXT, verifier=verifier)
    assert [f.index for f in again.attestations] == [0, 1]
    assert again.attestations[1].verification == "verified"


def test_cache_key_covers_json_formatting_and_trust_root() -> None:
    verifier = ProvenanceVerifier.from_settings()
    [doc] = load_attestation_file(ASSETS / "conformance/happy-path-v0.3/bundle.sigstore.json")
    reordered = dict(reversed(list(doc.items())))
    verifier.evaluate(doc, artifact_digest=A_TXT)
    verifier.evaluate(reordered, artifact_digest=A_TXT)  # same canonical JSON -> hit
    assert verifier.cache_stats.hits == 1
    staging = ProvenanceVerifier.from_settings(
        ASSETS / "conformance/rekor2-dsse-happy-path/trusted_root.json"
    )
    assert staging.trust_digest != verifier.trust_digest


def test_cache_is_bounded_lru() -> None:
    cache = VerificationCache(max_size=2)
    verifier = ProvenanceVerifier.from_settings(cache_size=2)
    paths = [
        "conformance/happy-path-v0.3/bundle.sigstore.json",
        "conformance/happy-path-v0.1/bundle.sigstore.json",
        "conformance/signature-mismatch_fail/bundle.sigstore.json",
    ]
    docs = [load_attestation_file(ASSETS / p)[0] for p in paths]
    for doc in docs:
        verifier.evaluate(doc, artifact_digest=A_TXT)
    assert verifier.cache_stats.size == 2
    verifier.evaluate(docs[0], artifact_digest=A_TXT)  # evicted -> miss
    assert (verifier.cache_stats.hits, verifier.cache_stats.misses) == (0, 4)
    verifier.evaluate(docs[2], artifact_digest=A_TXT)  # most recent -> hit
    assert verifier.cache_stats.hits == 1
    assert cache.stats().max_size == 2


def test_identity_policy_requires_an_identity_but_accepts_any_value() -> None:
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from sigstore.errors import VerificationError

    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(tz=UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "ca")]))
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(minutes=10))
    )
    bare = builder.sign(key, hashes.SHA256())
    with pytest.raises(VerificationError, match="no OIDC issuer"):
        RecordIdentityOnly().verify(bare)
    issuer_ext = x509.UnrecognizedExtension(
        x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8"), b"\x0c\x16https://anyone.example"
    )
    with_identity = (
        builder.add_extension(issuer_ext, critical=False)
        .add_extension(
            x509.SubjectAlternativeName([x509.RFC822Name("someone@example.com")]), critical=True
        )
        .sign(key, hashes.SHA256())
    )
    RecordIdentityOnly().verify(with_identity)
    facts = signer_facts(with_identity)
    assert (facts.issuer, facts.san) == ("https://anyone.example", "someone@example.com")


def test_a_warm_request_gets_the_same_section_object() -> None:
    verifier = ProvenanceVerifier.from_settings()
    [doc] = load_attestation_file(ASSETS / "conformance/happy-path-v0.3/bundle.sigstore.json")
    first = build_provenance_section([doc], artifact_digest=A_TXT, verifier=verifier)
    second = build_provenance_section([dict(doc)], artifact_digest=A_TXT, verifier=verifier)
    assert second is first  # the cached fact, so the kept section
    assert (verifier.cache_stats.hits, verifier.cache_stats.misses) == (1, 1)
    # Another artifact: other facts, another section; the first is still found after it.
    other = build_provenance_section([doc], artifact_digest="sha256:" + "0" * 64, verifier=verifier)
    assert other is not first and other.attestations[0].verification == "failed"
    assert build_provenance_section([doc], artifact_digest=A_TXT, verifier=verifier) is first


def test_a_section_with_a_fact_at_another_index_is_made_afresh_and_equal() -> None:
    verifier = ProvenanceVerifier.from_settings()
    paths = ["happy-path-v0.3", "dsse-invalid-sig_fail"]
    docs = [
        load_attestation_file(ASSETS / f"conformance/{p}/bundle.sigstore.json")[0] for p in paths
    ]
    first = build_provenance_section(docs, artifact_digest=A_TXT, verifier=verifier)
    second = build_provenance_section(docs, artifact_digest=A_TXT, verifier=verifier)
    assert second == first and second is not first  # index 1 is a copy every time
    assert [f.index for f in second.attestations] == [0, 1]


def test_without_a_cache_every_section_is_new_and_equal() -> None:
    verifier = ProvenanceVerifier.from_settings(cache_size=0)
    [doc] = load_attestation_file(ASSETS / "conformance/happy-path-v0.3/bundle.sigstore.json")
    first = build_provenance_section([doc], artifact_digest=A_TXT, verifier=verifier)
    second = build_provenance_section([doc], artifact_digest=A_TXT, verifier=verifier)
    assert second == first and second is not first
    assert second.attestations[0] is not first.attestations[0]
    assert (verifier.cache_stats.hits, verifier.cache_stats.misses, verifier.cache_stats.size) == (
        0,
        2,
        0,
    )


def test_an_invalid_attestation_is_never_kept() -> None:
    verifier = ProvenanceVerifier.from_settings()
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(200):
        node["x"] = {}
        node = node["x"]
    first = build_provenance_section([deep], artifact_digest=A_TXT, verifier=verifier)
    second = build_provenance_section([deep], artifact_digest=A_TXT, verifier=verifier)
    assert first.attestations[0].verification == "invalid"
    assert second == first and second is not first
    third = build_provenance_section([deep], artifact_digest=A_TXT, verifier=verifier)
    assert third is not first and third is not second


def test_no_attestations_is_one_missing_section() -> None:
    verifier = ProvenanceVerifier.from_settings()
    first = build_provenance_section([], artifact_digest=A_TXT, verifier=verifier)
    assert first.status == "missing" and first.message == "no attestations supplied"
    assert build_provenance_section([], artifact_digest=A_TXT, verifier=verifier) is first
