"""End to end against a real ``releasegate serve`` process (its own managed OPA, SQLite, keys).

Readiness is polled with a generous deadline that is never asserted on.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engine.adapters.cli import main
from tests.api.conftest import ARTIFACT_DIGEST, prod_request
from tests.conftest import REPO

START_DEADLINE_S = 60.0


def free_port() -> int:
    """A port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def create_token(state_dir: Path, subject: str, *roles: str) -> str:
    """``releasegate token create`` in process; returns the printed token."""
    from contextlib import redirect_stdout
    from io import StringIO

    out = StringIO()
    argv = ["token", "create", "--state-dir", str(state_dir), "--subject", subject]
    for role in roles:
        argv += ["--role", role]
    with redirect_stdout(out):
        assert main([*argv, "--format", "json"]) == 0
    return str(json.loads(out.getvalue())["token"])


@dataclass
class Server:
    """A running ``releasegate serve``."""

    process: subprocess.Popen[str]
    url: str
    summary: str
    state_dir: Path

    def call(
        self, method: str, path: str, *, token: str | None = None, body: Any = None, **kw: Any
    ) -> tuple[int, dict[str, str], Any]:
        """One request; returns (status, headers, parsed body)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=30, **kw) as resp:  # noqa: S310
                raw = resp.read()
                status, headers = resp.status, dict(resp.headers)
        except urllib.error.HTTPError as exc:
            raw, status, headers = exc.read(), exc.code, dict(exc.headers)
        ctype = headers.get("content-type", "")
        return status, headers, json.loads(raw) if "json" in ctype else raw.decode()


def start_server(
    state_dir: Path,
    env_extra: dict[str, str],
    *,
    scheme: str = "http",
    args: tuple[str, ...] = (),
    **urlopen_kw: Any,
) -> Server:
    """Start ``serve`` and wait until ``/healthz`` answers and the summary is printed."""
    port = free_port()
    env = {**os.environ, **env_extra}
    process = subprocess.Popen(
        [sys.executable, "-m", "engine.adapters.cli", "serve", "--state-dir", str(state_dir),
         "--port", str(port), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
    )  # fmt: skip
    url = f"{scheme}://127.0.0.1:{port}"
    deadline = time.monotonic() + START_DEADLINE_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"serve exited {process.returncode}: {process.stderr.read()}")  # type: ignore[union-attr]
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2, **urlopen_kw):  # noqa: S310
                break
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    else:
        process.kill()
        pytest.fail("serve did not answer /healthz")
    summary = []
    assert process.stdout is not None
    for line in process.stdout:
        summary.append(line)
        if line.strip().startswith("url:"):
            break
    return Server(process, url, "".join(summary), state_dir)


def stop(server: Server) -> tuple[int, str]:
    """SIGTERM; returns the exit code and stderr."""
    server.process.send_signal(signal.SIGTERM)
    _, err = server.process.communicate(timeout=60)
    return server.process.returncode, err


@pytest.fixture
def served(
    tmp_path: Path, policy_dir: Path, opa_binary: Path
) -> Iterator[tuple[Server, dict[str, str]]]:
    """A server on a fresh state directory with one token per role used here."""
    state_dir = tmp_path / "state"
    tokens = {
        "ci": create_token(state_dir, "ci-pipeline", "ci"),
        "approver": create_token(state_dir, "bob@example.com", "approver"),
        "auditor": create_token(state_dir, "audit", "auditor"),
    }
    env = {"RELEASEGATE_BUNDLE": str(policy_dir), "RELEASEGATE_OPA": str(opa_binary)}
    server = start_server(state_dir, env)
    yield server, tokens
    if server.process.poll() is None:
        server.process.kill()
        server.process.communicate()


def test_serve_end_to_end(
    served: tuple[Server, dict[str, str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, tokens = served
    # 1. What it uses and where.
    _, _, keys = server.call("GET", "/v1/keys")
    key_id = keys["keys"][0]["key_id"]
    for expected in (
        f"state dir:   {server.state_dir}",
        f"database:    sqlite:///{server.state_dir}/log.db",
        f"signing key: {key_id}",
        "tokens:      3 active",
        "engine:      opa 1.22.3 (managed, pid",
        f"url:         {server.url}",
    ):
        assert expected in server.summary, server.summary
    key_file = server.state_dir / "keys" / "signing-key.pem"
    assert key_file.stat().st_mode & 0o777 == 0o600
    status, _, ready = server.call("GET", "/readyz")
    assert status == 200 and ready["status"] == "ready"
    assert ready["policy"]["revision"] in server.summary

    # 2. A prod deploy pauses for want of an approval ...
    status, headers, first = server.call(
        "POST", "/v1/decisions", token=tokens["ci"], body=prod_request()
    )
    assert status == 200 and first["verdict"] == "pause"
    assert [r["code"] for r in first["reasons"]] == ["approval_missing"]
    assert headers["x-releasegate-decision-id"] == first["decision_id"]

    # 3. ... `releasegate approve` records one (token from RELEASEGATE_TOKEN) ...
    monkeypatch.setenv("RELEASEGATE_TOKEN", tokens["approver"])
    argv = ["approve", "--server", server.url, "--release-id", "payments-1.4.2",
            "--artifact", ARTIFACT_DIGEST, "--environment", "prod", "--comment", "ok",
            "--ticket", "CHG-7", "--expires-in", "4h", "--format", "json"]  # fmt: skip
    capsys.readouterr()
    assert main(argv) == 0
    recorded = json.loads(capsys.readouterr().out)
    assert recorded["approver"] == "bob@example.com"
    assert recorded["expires_ns"] - recorded["created_ns"] == 4 * 3600 * 10**9

    # 4. ... and the same request is now allowed.
    status, _, second = server.call(
        "POST", "/v1/decisions", token=tokens["ci"], body=prod_request()
    )
    assert status == 200 and second["verdict"] == "allow", second

    # 5. An auditor exports the log through the API and verifies it offline.
    monkeypatch.setenv("RELEASEGATE_TOKEN", tokens["auditor"])
    export, keys_file = tmp_path / "export.jsonl", tmp_path / "keys.json"
    keys_file.write_text(json.dumps(keys))
    assert main(["log", "export", "--server", server.url, "--out", str(export)]) == 0
    assert main(["log", "verify", "--export", str(export), "--keys", str(keys_file)]) == 0
    assert len(export.read_text().splitlines()) == 3  # two records, then the checkpoint

    # 6. Metrics count what was decided.
    _, _, metrics = server.call("GET", "/metrics")
    assert 'releasegate_decisions_total{verdict="pause"} 1.0' in metrics
    assert 'releasegate_decisions_total{verdict="allow"} 1.0' in metrics
    assert (
        'releasegate_decision_reasons_total{code="approval_missing",verdict="pause"} 1.0' in metrics
    )
    assert "releasegate_opa_restarts_total 0.0" in metrics
    assert "releasegate_verification_cache_hits_total" in metrics

    # 7. A clean stop; one JSON line per request and per decision, never a token.
    code, err = stop(server)
    assert code == 0
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    decisions = [x for x in lines if x.get("event") == "decision"]
    assert [d["decision_id"] for d in decisions] == [first["decision_id"], second["decision_id"]]
    assert decisions[0]["caller"] == "ci-pipeline"
    assert decisions[0]["requested_by"] == "alice@example.com"
    requests = [x for x in lines if x.get("event") == "request"]
    assert any(r["decision_id"] == first["decision_id"] for r in requests)
    for token in tokens.values():
        assert token not in err
    assert "BEGIN PRIVATE KEY" not in err


def test_serve_refuses_insecure_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    assert main(["serve", "--host", "0.0.0.0", "--state-dir", str(state)]) == 2
    assert "host: 0.0.0.0 is not loopback and TLS is off" in capsys.readouterr().err
    state.mkdir()
    state.chmod(0o777)
    assert main(["serve", "--state-dir", str(state)]) == 2
    assert "writable by group or others" in capsys.readouterr().err


def test_serve_rejects_invalid_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RELEASEGATE_APPROVAL_MAX_TTL_S", "-1")
    assert main(["serve", "--state-dir", str(tmp_path)]) == 2
    assert "approval_max_ttl_s" in capsys.readouterr().err


def _certificates(directory: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate for 'auditor-bot'."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def issue(
        cn: str,
        issuer: x509.Name,
        signing_key: Any,
        *,
        ca: bool,
        usage: Any = None,
        san: Any = None,
    ) -> tuple[Any, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if usage is not None:
            builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if san is not None:
            builder = builder.add_extension(san, critical=False)
        return key, builder.sign(signing_key or key, hashes.SHA256())

    ca_key, ca_cert = issue("releasegate test CA", name("releasegate test CA"), None, ca=True)
    san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    srv_key, srv_cert = issue(
        "127.0.0.1", ca_cert.subject, ca_key, ca=False, usage=ExtendedKeyUsageOID.SERVER_AUTH,
        san=san,
    )  # fmt: skip
    cli_key, cli_cert = issue(
        "auditor-bot", ca_cert.subject, ca_key, ca=False, usage=ExtendedKeyUsageOID.CLIENT_AUTH
    )
    files: dict[str, Path] = {}
    for label, obj in (("ca", ca_cert), ("server", srv_cert), ("client", cli_cert)):
        files[label] = directory / f"{label}.pem"
        files[label].write_bytes(obj.public_bytes(serialization.Encoding.PEM))
    for label, key in (("server_key", srv_key), ("client_key", cli_key)):
        files[label] = directory / f"{label}.pem"
        files[label].write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return files


def test_mutual_tls_certificate_subject_is_the_identity(
    tmp_path: Path, policy_dir: Path, opa_binary: Path
) -> None:
    import ssl

    certs = _certificates(tmp_path)
    client_ctx = ssl.create_default_context(cafile=str(certs["ca"]))
    client_ctx.load_cert_chain(str(certs["client"]), str(certs["client_key"]))
    env = {
        "RELEASEGATE_BUNDLE": str(policy_dir),
        "RELEASEGATE_OPA": str(opa_binary),
        "RELEASEGATE_TLS_CERT": str(certs["server"]),
        "RELEASEGATE_TLS_KEY": str(certs["server_key"]),
        "RELEASEGATE_TLS_CLIENT_CA": str(certs["ca"]),
        "RELEASEGATE_CLIENT_CERT_ROLES": json.dumps({"auditor-bot": ["auditor"]}),
    }
    server = start_server(tmp_path / "state", env, scheme="https", context=client_ctx)
    try:
        assert "mutual TLS:  on" in server.summary
        # The certificate's subject is the identity: auditor routes answer without a token ...
        status, _, checkpoint = server.call("GET", "/v1/log/checkpoint", context=client_ctx)
        assert status == 200 and checkpoint["size"] == 0
        # ... and its roles are the mapped ones only.
        status, _, body = server.call(
            "POST", "/v1/approvals", body={"release_id": "x"}, context=client_ctx
        )
        assert status == 403 and body["code"] == "forbidden"
        # A client without a certificate does not get past the handshake.
        anonymous = ssl.create_default_context(cafile=str(certs["ca"]))
        with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
            server.call("GET", "/healthz", context=anonymous)
    finally:
        code, err = stop(server)
    assert code == 0, err


def test_server_tls_serves_through_the_coalescing_protocol(
    tmp_path: Path, policy_dir: Path, opa_binary: Path
) -> None:
    """TLS without client certificates: uvicorn's httptools protocol with one write per
    response (``engine.api.coalesce``) over the TLS transport."""
    import ssl

    certs = _certificates(tmp_path)
    client_ctx = ssl.create_default_context(cafile=str(certs["ca"]))
    env = {
        "RELEASEGATE_BUNDLE": str(policy_dir),
        "RELEASEGATE_OPA": str(opa_binary),
        "RELEASEGATE_TLS_CERT": str(certs["server"]),
        "RELEASEGATE_TLS_KEY": str(certs["server_key"]),
    }
    server = start_server(tmp_path / "state", env, scheme="https", context=client_ctx)
    try:
        for _ in range(3):  # one keep-alive connection would do; each call opens its own
            status, _, body = server.call("GET", "/healthz", context=client_ctx)
            assert status == 200 and body["status"] == "ok"
    finally:
        code, _ = stop(server)
    assert code == 0
