"""Regression tests for bugs the hardening suite found, named after the bug."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from engine.engines.opa import ManagedOpaEngine
from engine.engines.policy_source import PolicySource
from engine.errors import BundleError, ConfigError, InputError
from engine.inputs.scans import build_vulnerabilities_section
from engine.log.keystore import (
    PRIVATE_KEY_FILE,
    generate_signing_key,
    keys_dir,
    load_signing_key,
)
from engine.models.request import ScanEvidence
from hardening import seeds
from hardening.hostile import put
from hardening.load import ask, workload
from hardening.security import (
    BYPASS_VARIANTS,
    bundle_keys,
    read_members,
    signed_policy_bundle,
    write_members,
)


@pytest.mark.parametrize("parser", sorted(seeds.SCAN_SEEDS))
@pytest.mark.parametrize("where", ["value", "key"])
def test_lone_surrogate_in_scan_report_is_input_error_not_500(parser: str, where: str) -> None:
    """JSON may carry ``"\\ud800"``; UTF-8 cannot. check_report crashed with
    UnicodeEncodeError (HTTP 500) when it measured such a report; now it is an InputError
    naming the field."""
    fmt, _ = seeds.SCAN_SEEDS[parser]
    report = seeds.scan_report(parser)
    report = put(report, ("extra",), "a\ud800b") if where == "value" else {**report, "\udc00": 1}
    evidence = ScanEvidence.model_validate({"format": fmt, "report": report})
    with pytest.raises(InputError) as err:
        build_vulnerabilities_section([evidence], artifact_digest=seeds.ARTIFACT_DIGEST)
    assert "not valid Unicode" in str(err.value.errors[0].message)
    expected = "evidence.scans[0].report.extra" if where == "value" else "evidence.scans[0].report"
    assert err.value.errors[0].loc == expected


def test_lost_signing_key_is_not_silently_replaced_at_start(tmp_path: Path) -> None:
    """With a key ring on disk and the private key gone, ``serve`` (``create=True``) used to
    generate a new key and sign on; it now refuses, naming the key and the way out."""
    first, _ = load_signing_key(tmp_path, create=True)  # the first start creates it
    (keys_dir(tmp_path) / PRIVATE_KEY_FILE).unlink()
    with pytest.raises(ConfigError, match="missing, but the key ring lists 1 earlier key"):
        load_signing_key(tmp_path, create=True)
    assert not (keys_dir(tmp_path) / PRIVATE_KEY_FILE).exists()
    # A deliberate rotation is still possible, and keeps the old key verifiable.
    generate_signing_key(tmp_path)
    signer, ring = load_signing_key(tmp_path, create=True)
    assert signer.key_id != first.key_id and first.key_id in ring


def test_bundle_signed_under_another_key_id_is_refused_by_the_managed_engine(
    tmp_path: Path, opa_binary: Path
) -> None:
    """OPA, given the key on its command line, ignores the token's key id: a bundle whose
    signature names another key id loaded. The managed engine now runs releasegate's
    verifier (which checks the key id) first, and keeps serving its current policy."""
    keys = bundle_keys(tmp_path / "keys")
    good = signed_policy_bundle(tmp_path, keys)
    bad = write_members(
        tmp_path / "kid.tar.gz", BYPASS_VARIANTS["wrong_key_id"](read_members(good), keys)
    )
    engine = ManagedOpaEngine(PolicySource(good, public_key=keys.public), opa=opa_binary)
    try:
        before = engine.policy
        with pytest.raises(BundleError, match="key id 'intruder' does not match 'releasegate'"):
            engine.reload(PolicySource(bad, public_key=keys.public))
        assert engine.policy == before and engine.healthy
    finally:
        engine.close()
    with pytest.raises(BundleError, match="refused"):
        ManagedOpaEngine(PolicySource(bad, public_key=keys.public), opa=opa_binary)


@pytest.mark.parametrize("operation", [["CREATE"], {"op": "CREATE"}])
def test_unhashable_admission_operation_is_a_denial_not_a_500(
    app_client: tuple[TestClient, dict[str, str]], operation: object
) -> None:
    """``request.operation`` was tested with ``in {...}``: a list or object raised
    TypeError (HTTP 500). It is now a malformed review, answered ``allowed: false``."""
    client, tokens = app_client
    review = seeds.admission_review()
    review["request"]["operation"] = operation
    r = client.post("/v1/admission", json=review,
                    headers={"Authorization": f"Bearer {tokens['admission']}"})  # fmt: skip
    assert r.status_code == 200, r.text
    response = r.json()["response"]
    assert response["allowed"] is False and response["uid"] == review["request"]["uid"]
    assert "request.operation" in response["status"]["message"]


def test_an_answer_cut_after_its_head_is_no_answer_for_the_load_harness() -> None:
    """The kill -9 durability test failed once: the service died between an answer's head
    and its body, and ``http.client.IncompleteRead`` (not an ``OSError``) escaped a load
    worker thread. ``call`` now reports a cut answer as a ``ConnectionError``, so a partial
    answer is no answer (status 0)."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def answer_half() -> None:
        conn, _ = listener.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            while len(body) < length:  # read it all: unread bytes would make the close a reset
                body += conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 100\r\n\r\n{")  # fmt: skip

    server = threading.Thread(target=answer_half)
    server.start()
    try:
        job = workload()[0]
        answer = ask(f"http://127.0.0.1:{port}", "token", job, timeout=10)
    finally:
        server.join(timeout=10)
        listener.close()
    assert (answer.status, answer.verdict) == (0, None)
