"""Security: secrets in logs, per-client auth rate limiting, body limits and TLS on a real
socket, bundle-signature bypass attempts, decision-log tamper cases.

The auth matrix (every route x every role) is tests/api/test_auth_matrix.py and the
in-process 429 / 413 checks are tests/api; these add what a real server and client show.
"""

from __future__ import annotations

import http.client
import json
import ssl
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from engine.adapters.commands.serve import insecure_settings
from engine.config import build_settings
from hardening import seeds
from hardening.faults import served_app
from hardening.figures import Figures
from hardening.load import ask, workload
from hardening.security import (
    TAMPER_CASES,
    bundle_bypass,
    captured_records,
    logs_of_a_run,
    render_records,
    request_from,
    scan,
    secrets_of_bundle,
    self_signed,
    tamper_export,
    tls_probe,
)
from hardening.service import ServeProcess, audit, create_tokens, start_serve

LIMIT = 3
MAX_BODY = 64 * 1024


def _limited_serve(tmp_path_factory: pytest.TempPathFactory) -> ServeProcess:
    state = tmp_path_factory.mktemp("limited") / "state"
    tokens = create_tokens(state)
    server = start_serve(state, env={
        "RELEASEGATE_AUTH_FAILURE_LIMIT": str(LIMIT),
        "RELEASEGATE_AUTH_FAILURE_WINDOW_S": "60",
        "RELEASEGATE_MAX_BODY_BYTES": str(MAX_BODY),
    })  # fmt: skip
    server.tokens = tokens
    return server


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    server = _limited_serve(tmp_path_factory)
    yield server
    server.stop()


@pytest.fixture()
def limited_alone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """A service of its own, for a test that exhausts the limit of 127.0.0.1."""
    server = _limited_serve(tmp_path_factory)
    yield server
    server.stop()


def test_no_tokens_keys_or_evidence_in_the_service_logs(tmp_path: Path, figures: Figures) -> None:
    found, sizes = logs_of_a_run(tmp_path, figures)
    assert found == {"serve stdout": [], "serve stderr": [], "opa logs": []}
    assert sizes["serve stderr"] > 2000  # debug-level JSON lines were written and scanned


def test_no_secrets_in_log_records_of_the_app(
    app_client: tuple[TestClient, dict[str, str]],
) -> None:
    client, tokens = app_client
    bundle = seeds.sigstore_bundle()
    with captured_records() as records:
        for job in workload():
            client.post("/v1/decisions", json=job.body,
                        headers={"Authorization": f"Bearer {tokens['ci']}"})  # fmt: skip
        client.get("/v1/decisions", headers={"Authorization": f"Bearer {tokens['ci']}z"})
        client.post("/v1/admission", json=seeds.admission_review(),
                    headers={"Authorization": f"Bearer {tokens['admission']}"})  # fmt: skip
    text = render_records(records)
    needles = dict(tokens)
    needles |= {"PRIVATE KEY": "PRIVATE KEY"}
    needles |= {f"bundle{i}": s for i, s in enumerate(secrets_of_bundle(bundle))}
    assert len(records) >= 5 and '"event":"decision"' in text
    assert scan(text, needles) == []
    # The scan itself finds what is there.
    assert scan(text + tokens["ci"], needles) == ["ci"]


def test_failed_auth_is_rate_limited_per_client(limited: ServeProcess) -> None:
    bad = "rg_" + "x" * 43
    for _ in range(LIMIT):
        status, _ = request_from(limited, "127.0.0.2", "GET", "/v1/log/checkpoint", token=bad)
        assert status == 401
    status, headers = request_from(limited, "127.0.0.2", "GET", "/v1/log/checkpoint", token=bad)
    assert status == 429 and 1 <= int(headers["retry-after"]) <= 60
    # Blocked before the token is looked at, and a forwarded-for header does not unblock it.
    good = limited.tokens["auditor"]
    assert request_from(limited, "127.0.0.2", "GET", "/v1/log/checkpoint", token=good)[0] == 429
    spoofed = {"X-Forwarded-For": "203.0.113.9"}
    assert request_from(limited, "127.0.0.2", "GET", "/v1/log/checkpoint", token=good,
                        headers=spoofed)[0] == 429  # fmt: skip
    # Another client is not affected; public routes stay open for the blocked one.
    assert request_from(limited, "127.0.0.3", "GET", "/v1/log/checkpoint", token=good)[0] == 200
    assert request_from(limited, "127.0.0.2", "GET", "/healthz")[0] == 200


def test_forwarded_for_from_loopback_does_not_escape_the_auth_limit(
    limited_alone: ServeProcess,
) -> None:
    """Regression: uvicorn believed X-Forwarded-For from 127.0.0.1, so a local client could
    rotate the header to dodge the failed-auth limit. No proxy is trusted unless configured."""
    bad = "rg_" + "y" * 43
    statuses = [
        request_from(
            limited_alone,
            "127.0.0.1",
            "GET",
            "/v1/log/checkpoint",
            token=bad,
            headers={"X-Forwarded-For": f"198.51.100.{i}"},
        )[0]  # fmt: skip
        for i in range(LIMIT + 1)
    ]
    assert statuses == [401] * LIMIT + [429]


def test_request_size_limit_on_a_real_socket(limited: ServeProcess) -> None:
    token = limited.tokens["ci"]
    before = limited.call("GET", "/v1/log/checkpoint", token=limited.tokens["auditor"]).body
    big = json.dumps({**seeds.decision_request("dev"), "pad": "x" * MAX_BODY}).encode()
    headers = {"Content-Type": "application/json"}
    status, _ = request_from(limited, "127.0.0.4", "POST", "/v1/decisions", token=token,
                             headers=headers, body=big)  # fmt: skip
    assert status == 413
    port = int(limited.url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.putrequest("POST", "/v1/decisions")
        conn.putheader("Authorization", f"Bearer {token}")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        chunk = b" " * 8192
        try:
            for _ in range(MAX_BODY // len(chunk) + 2):
                conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            conn.send(b"0\r\n\r\n")
        except OSError:
            pass  # the server may close as soon as it answered
        response = conn.getresponse()
        assert response.status == 413
        assert json.loads(response.read())["code"] == "request_too_large"
    finally:
        conn.close()
    after = limited.call("GET", "/v1/log/checkpoint", token=limited.tokens["auditor"]).body
    assert after["size"] == before["size"]


def test_tls_with_a_self_signed_certificate(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    # Non-loopback without TLS is refused; with a certificate it is acceptable.
    for host in ("0.0.0.0", "::", "192.0.2.10", "gate.example.com"):  # noqa: S104
        plain = build_settings(state_dir=tmp_path / "s", host=host)
        assert [p.loc for p in insecure_settings(plain)] == ["host"], host
        tls = build_settings(state_dir=tmp_path / "s", host=host, tls_cert=cert, tls_key=key)
        assert insecure_settings(tls) == [], host
    ctx = ssl.create_default_context(cafile=str(cert))
    state = tmp_path / "state"
    tokens = create_tokens(state)
    server = start_serve(state, env={"RELEASEGATE_TLS_CERT": str(cert),
                                     "RELEASEGATE_TLS_KEY": str(key)},
                         scheme="https", context=ctx)  # fmt: skip
    try:
        port = int(server.url.rsplit(":", 1)[1])
        assert "url:         https://127.0.0.1" in server.stdout_path.read_text()
        assert tls_probe("127.0.0.1", port, ctx).startswith("ok:TLSv1.")
        reply = server.call("POST", "/v1/decisions", token=tokens["ci"],
                            body=workload()[0].body, context=ctx)  # fmt: skip
        assert reply.status == 200 and reply.body["verdict"] == "allow"
        # A client that does not trust the certificate, or speaks TLS 1.1, gets nothing.
        assert tls_probe("127.0.0.1", port, ssl.create_default_context()).startswith("refused")
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.load_verify_locations(str(cert))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.1 is deprecated: the point
            old.maximum_version = ssl.TLSVersion.TLSv1_1
        assert tls_probe("127.0.0.1", port, old).startswith("refused")
        # Plain HTTP to the TLS port is not served.
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        with pytest.raises((http.client.HTTPException, OSError)):
            conn.request("GET", "/healthz")
            conn.getresponse().read()
        conn.close()
    finally:
        assert server.stop() == 0


def test_bundle_signature_bypass_attempts_are_refused(tmp_path: Path, figures: Figures) -> None:
    result = bundle_bypass(tmp_path, figures)
    assert result.accepted == []
    assert len(result.reload) == len(result.opa) + len(result.opa_only_accepted) == 11
    assert len(result.verify) == 10
    # OPA alone, given the key on its command line, ignores the token's key id; the
    # managed engine's own check (tests/hardening/test_regressions.py) refuses it.
    assert set(result.opa_only_accepted) <= {"wrong_key_id"}
    assert "missing .signatures.json" in result.opa["unsigned_when_signing_configured"]
    assert "not included in bundle signature" in result.opa["file_not_covered_by_signature"]


def test_log_tamper_cases_are_detected(tmp_path: Path, figures: Figures) -> None:
    with served_app(tmp_path / "state") as served:
        for job in workload():
            ask(served.base, served.tokens["ci"], job)
    checked = audit(tmp_path / "state", tmp_path / "audit")
    assert checked.intact and checked.size == 3
    keys = (tmp_path / "audit" / "keys.json").read_text()
    detected = tamper_export(tmp_path / "audit" / "export.jsonl", keys, figures)
    assert sorted(detected) == sorted(TAMPER_CASES)
