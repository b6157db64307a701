"""Security checks: secrets in logs, per-client auth rate limiting, body limits over a real
socket, TLS, bundle-signature bypass attempts and decision-log tamper cases."""

from __future__ import annotations

import base64
import datetime
import gzip
import http.client
import io
import ipaddress
import json
import logging
import shutil
import ssl
import tarfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.bundles import SigningAlg, build_bundle, generate_signing_key, verify_bundle
from engine.bundles.build import signature_payload
from engine.bundles.hashing import file_digest
from engine.bundles.keys import load_signing_key
from engine.bundles.models import BundleFile
from engine.bundles.sign import b64url_encode, sign_jws
from engine.engines.opa import ManagedOpaEngine, find_opa
from engine.engines.policy_source import PolicySource
from engine.errors import BundleError
from engine.log import KeyRing, verify_export
from engine.log.verify import ExportVerificationError
from hardening import seeds
from hardening.figures import Figures
from hardening.load import workload
from hardening.service import ServeProcess, create_tokens, start_serve

Members = dict[str, bytes]


# -- secrets in logs ---------------------------------------------------------------------


def secrets_of_bundle(bundle: dict[str, Any]) -> list[str]:
    """Distinctive substrings of a Sigstore bundle: certificate, signature, DSSE payload."""
    material = bundle["verificationMaterial"]
    cert = (material.get("certificate") or {}).get("rawBytes") or ""
    env = bundle.get("dsseEnvelope") or {}
    sig = (env.get("signatures") or [{}])[0].get("sig", "")
    payload = env.get("payload", "")
    return [s[len(s) // 2 : len(s) // 2 + 40] for s in (cert, sig, payload) if len(s) > 80]


def scan(text: str, needles: dict[str, str]) -> list[str]:
    """The names of the needles found in ``text``."""
    return [name for name, needle in needles.items() if needle and needle in text]


def logs_of_a_run(work: Path, figures: Figures) -> tuple[dict[str, list[str]], dict[str, int]]:
    """Run ``serve --log-level debug`` with real tokens and evidence, exercise success,
    failure and error paths, then scan stdout, stderr and the managed OPA's log files for
    every token, ``PRIVATE KEY`` and the bundle's certificate/signature/payload.

    Returns what was found where, and how many characters each source held."""
    state = work / "state"
    tokens = create_tokens(state)
    tmp = work / "tmp"
    tmp.mkdir()
    server = start_serve(state, env={"TMPDIR": str(tmp), "RELEASEGATE_AUTH_FAILURE_LIMIT": "5"},
                         args=["--log-level", "debug"])  # fmt: skip
    server.tokens = tokens
    bundle = seeds.sigstore_bundle()
    bad = dict(bundle)
    bad["dsseEnvelope"] = {**bundle["dsseEnvelope"], "payloadType": 7}
    scan_body = seeds.decision_request("dev")
    scan_body["evidence"]["scans"] = [{"format": "trivy", "report": {"Results": "x"}}]
    for job in workload():
        server.decide(job.body)
    server.decide({**seeds.decision_request("dev"), "evidence": {"attestations": [bad]}})
    server.decide(scan_body)  # 422 naming the scan field
    server.decide({"release": {"id": bundle["dsseEnvelope"]["payload"][:300]}})  # 422
    server.call("POST", "/v1/approvals", token=tokens["approver"],
                body={"release_id": "payments-1.4.2", "artifact_digest": seeds.ARTIFACT_DIGEST,
                      "environment": "prod", "comment": "ok"})  # fmt: skip
    server.call("GET", "/v1/log/checkpoint", token=tokens["ci"] + "x")  # 401, a near-token
    server.call("GET", "/v1/decisions", token=tokens["auditor"])
    opa_logs = "".join(p.read_text(errors="replace") for p in tmp.rglob("*.log"))
    server.stop()
    needles = {f"token:{role}": tok for role, tok in tokens.items()}
    needles["PRIVATE KEY"] = "PRIVATE KEY"
    needles.update({f"bundle:{i}": s for i, s in enumerate(secrets_of_bundle(bundle))})
    texts = {
        "serve stdout": server.stdout_path.read_text(errors="replace"),
        "serve stderr": server.stderr_path.read_text(errors="replace"),
        "opa logs": opa_logs,
    }
    found = {name: scan(text, needles) for name, text in texts.items()}
    figures.leaks_found += sum(len(v) for v in found.values())
    return found, {name: len(text) for name, text in texts.items()}


@contextmanager
def captured_records() -> Iterator[list[logging.LogRecord]]:
    """Every log record emitted (any logger, DEBUG and up) while the block runs."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    root = logging.getLogger()
    handler, level = Keep(logging.DEBUG), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def render_records(records: list[logging.LogRecord]) -> str:
    """Records as the service writes them (JSON, tracebacks on) plus their raw args."""
    from engine.api.logs import JsonLogFormatter

    formatter = JsonLogFormatter(tracebacks=True)
    return "\n".join(f"{formatter.format(r)} {r.args!r}" for r in records)


# -- rate limiting per client, body limits ---------------------------------------------------


def request_from(
    server: ServeProcess, source: str, method: str, path: str, *, token: str | None = None,
    headers: dict[str, str] | None = None, body: bytes | None = None,
) -> tuple[int, dict[str, str]]:  # fmt: skip
    """One request from a chosen loopback source address (127.0.0.x)."""
    port = int(server.url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60, source_address=(source, 0))
    try:
        hdrs = dict(headers or {})
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


# -- TLS -------------------------------------------------------------------------------------


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A self-signed ECDSA certificate for 127.0.0.1 / localhost and its key (PEM files)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "releasegate hardening")])
    now = datetime.datetime.now(datetime.UTC)
    san = x509.SubjectAlternativeName(
        [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "tls-cert.pem", directory / "tls-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def tls_probe(host: str, port: int, ctx: ssl.SSLContext) -> str:
    """``ok:<version>`` when a TLS handshake and ``GET /healthz`` succeed, else the error."""
    conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=30)
    try:
        conn.request("GET", "/healthz")
        resp = conn.getresponse()
        resp.read()
        version = conn.sock.version() if conn.sock is not None else "?"
        return f"ok:{version}:{resp.status}"
    except (ssl.SSLError, OSError) as exc:
        return f"refused:{type(exc).__name__}"
    finally:
        conn.close()


# -- bundle-signature bypass attempts --------------------------------------------------------

KEY_ID = "releasegate"


@dataclass(frozen=True)
class BundleKeys:
    """The trusted key pair and an untrusted one (ES256, OPA's default)."""

    private: Path
    public: Path
    other_private: Path
    other_public: Path


def bundle_keys(directory: Path) -> BundleKeys:
    """Generate both key pairs."""
    directory.mkdir(parents=True, exist_ok=True)
    keys = BundleKeys(
        directory / "trusted.pem", directory / "trusted.pub.pem",
        directory / "other.pem", directory / "other.pub.pem",
    )  # fmt: skip
    generate_signing_key(keys.private, keys.public, alg=SigningAlg.ES256)
    generate_signing_key(keys.other_private, keys.other_public, alg=SigningAlg.ES256)
    return keys


def read_members(path: Path) -> Members:
    """The regular files of a bundle tarball, by name without the leading slash."""
    out: Members = {}
    with tarfile.open(path, "r:gz") as tar:
        for m in tar.getmembers():
            fh = tar.extractfile(m)
            if fh is not None:
                out[m.name.lstrip("/")] = fh.read()
    return out


def write_members(path: Path, members: Members) -> Path:
    """A gzip tarball of ``members`` (no re-signing)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(gzip.compress(buf.getvalue(), mtime=0))
    return path


def _token(members: Members, keys: BundleKeys, *, key_id: str = KEY_ID,
           private: Path | None = None, payload_key_id: str | None = None) -> str:  # fmt: skip
    files = [BundleFile(n, file_digest(n, d)) for n, d in sorted(members.items())]
    payload = signature_payload(files, key_id=payload_key_id or key_id)
    return sign_jws(payload, key=load_signing_key(private or keys.private), key_id=key_id)


def _signed(members: Members, token: str) -> Members:
    return {**members, ".signatures.json": json.dumps({"signatures": [token]}).encode()}


def _alg_none(members: Members) -> str:
    files = [BundleFile(n, file_digest(n, d)) for n, d in sorted(members.items())]
    header = b64url_encode(json.dumps({"alg": "none", "kid": KEY_ID}).encode())
    body = b64url_encode(json.dumps(signature_payload(files, key_id=KEY_ID)).encode())
    return f"{header}.{body}."


Variant = Callable[[Members, BundleKeys], Members]
EXTRA_REGO = b"package releasegate.backdoor\n\nallow_everything := true\n"


def _unsigned(m: Members, k: BundleKeys) -> Members:
    return {n: d for n, d in m.items() if n != ".signatures.json"}


def _file_not_covered(m: Members, k: BundleKeys) -> Members:
    return {**m, "releasegate/backdoor.rego": EXTRA_REGO}


def _tampered(m: Members, k: BundleKeys) -> Members:
    name = next(n for n in sorted(m) if n.endswith(".rego"))
    return {**m, name: m[name] + b"\n# tampered\n"}


def _data_tampered(m: Members, k: BundleKeys) -> Members:
    name = next(n for n in sorted(m) if n.endswith("data.json"))
    doc = json.loads(m[name])
    doc["verdicts"] = {"provenance_missing": "allow"}
    return {**m, name: json.dumps(doc).encode()}


def _wrong_key_id(m: Members, k: BundleKeys) -> Members:
    content = _unsigned(m, k)
    return _signed(content, _token(content, k, key_id="intruder", payload_key_id="intruder"))


def _foreign_key(m: Members, k: BundleKeys) -> Members:
    content = {**_unsigned(m, k), "releasegate/backdoor.rego": EXTRA_REGO}
    return _signed(content, _token(content, k, private=k.other_private))


def _alg_none_variant(m: Members, k: BundleKeys) -> Members:
    content = {**_unsigned(m, k), "releasegate/backdoor.rego": EXTRA_REGO}
    return _signed(content, _alg_none(content))


def _empty_signatures(m: Members, k: BundleKeys) -> Members:
    return {**_unsigned(m, k), ".signatures.json": b'{"signatures": []}'}


def _stray_signatures(m: Members, k: BundleKeys) -> Members:
    content = {**_unsigned(m, k), "releasegate/backdoor.rego": EXTRA_REGO}
    token = _token(content, k)
    stray = json.dumps({"signatures": [token]}).encode()
    return {**m, "releasegate/backdoor.rego": EXTRA_REGO, "releasegate/.signatures.json": stray}


def _resigned_subset(m: Members, k: BundleKeys) -> Members:
    # A genuine signature over the original files, plus a backdoor file it does not cover,
    # and a second (foreign) signature that does cover it.
    content = {**_unsigned(m, k), "releasegate/backdoor.rego": EXTRA_REGO}
    original = json.loads(m[".signatures.json"])["signatures"][0]
    foreign = _token(content, k, private=k.other_private)
    return {**content, ".signatures.json": json.dumps({"signatures": [original, foreign]}).encode()}


BYPASS_VARIANTS: dict[str, Variant] = {
    "unsigned_when_signing_configured": _unsigned,
    "file_not_covered_by_signature": _file_not_covered,
    "policy_file_tampered": _tampered,
    "data_file_tampered": _data_tampered,
    "wrong_key_id": _wrong_key_id,
    "signed_by_foreign_key": _foreign_key,
    "alg_none_token": _alg_none_variant,
    "empty_signature_list": _empty_signatures,
    "signatures_file_in_subdirectory": _stray_signatures,
    "genuine_plus_foreign_signature": _resigned_subset,
}
"""Attempts to load policy the trusted key did not sign (GHSA-g2pf-6v5v-qcc8 class)."""


@dataclass
class BypassResult:
    """Per layer and variant: the refusal message; and whatever was accepted."""

    verify: dict[str, str] = field(default_factory=dict)
    """``verify_bundle`` (``releasegate bundle verify``)."""
    opa: dict[str, str] = field(default_factory=dict)
    """OPA alone (``opa run --verification-key``; releasegate's pre-check switched off)."""
    reload: dict[str, str] = field(default_factory=dict)
    """The managed engine's ``reload`` as shipped (pre-check, then OPA)."""
    accepted: list[str] = field(default_factory=list)
    opa_only_accepted: list[str] = field(default_factory=list)
    """Accepted by OPA alone: informational, the shipped engine must still refuse them."""


class _OpaOnlySource(PolicySource):
    """A policy source that leaves signature verification to OPA alone."""

    def _verify_tarball(self, public_key: Path) -> None:
        return None


def signed_policy_bundle(work: Path, keys: BundleKeys) -> Path:
    """The repository's policies, built and signed with the trusted key."""
    out = work / "releasegate.tar.gz"
    build_bundle(seeds.REPO / "policies", out, signing_key=keys.private, key_id=KEY_ID)
    return out


def _try_reload(engine: ManagedOpaEngine, source: PolicySource) -> str | None:
    """None when the engine swapped to ``source``; else the refusal (previous policy kept)."""
    before = engine.policy
    try:
        engine.reload(source)
    except BundleError as exc:
        if engine.policy != before or not engine.healthy:
            return None
        return str(exc)[-300:]
    return None


def bundle_bypass(work: Path, figures: Figures) -> BypassResult:
    """Every variant against ``verify_bundle``, OPA alone and the managed engine's
    ``reload`` (``--verification-key``): releasegate's two layers must refuse each one and
    keep serving the policy they had."""
    keys = bundle_keys(work / "keys")
    good = signed_policy_bundle(work, keys)
    members = read_members(good)
    result = BypassResult()
    engine = ManagedOpaEngine(
        PolicySource(good, public_key=keys.public, key_id=KEY_ID), opa=find_opa(), timeout=5
    )
    try:
        cases = {
            name: write_members(work / f"{name}.tar.gz", variant(members, keys))
            for name, variant in BYPASS_VARIANTS.items()
        }
        # Directory bundles are verified by OPA: a signature-less directory is refused.
        cases["unsigned_directory"] = Path(shutil.copytree(seeds.REPO / "policies", work / "d"))
        for name, bad in cases.items():
            if bad.is_file():
                figures.bypass_cases += 1
                try:
                    verify_bundle(bad, public_key=keys.public, key_id=KEY_ID)
                    result.accepted.append(f"verify_bundle:{name}")
                except BundleError as exc:
                    result.verify[name] = str(exc)
                    figures.bypass_refused += 1
            refused = _try_reload(engine, _OpaOnlySource(bad, public_key=keys.public))
            if refused is None:
                result.opa_only_accepted.append(name)
                engine.reload(PolicySource(good, public_key=keys.public, key_id=KEY_ID))
            else:
                result.opa[name] = refused
            figures.bypass_cases += 1
            refused = _try_reload(engine, PolicySource(bad, public_key=keys.public))
            if refused is None:
                result.accepted.append(f"managed engine reload:{name}")
            else:
                result.reload[name] = refused
                figures.bypass_refused += 1
    finally:
        engine.close()
    return result


# -- decision-log tamper cases -----------------------------------------------------------------


def _edit(lines: list[str], index: int, fn: Callable[[dict[str, Any]], None]) -> list[str]:
    out = list(lines)
    doc = json.loads(out[index])
    fn(doc)
    out[index] = json.dumps(doc, separators=(",", ":"))
    return out


def _set_verdict(doc: dict[str, Any]) -> None:
    doc["verdict"] = "allow" if doc.get("verdict") != "allow" else "rollback"


def _drop_reason(doc: dict[str, Any]) -> None:
    doc["reasons"] = []
    doc["verdict"] = "allow"


def _swap_sig(doc: dict[str, Any]) -> None:
    raw = bytearray(base64.b64decode(doc["signature"]["value"]))
    raw[0] ^= 1
    doc["signature"]["value"] = base64.b64encode(bytes(raw)).decode()


TAMPER_CASES: dict[str, Callable[[list[str]], list[str]]] = {
    "verdict_rewritten": lambda ls: _edit(ls, 1, _set_verdict),
    "reasons_dropped": lambda ls: _edit(ls, 1, _drop_reason),
    "signature_bit_flipped": lambda ls: _edit(ls, 0, _swap_sig),
    "record_deleted": lambda ls: ls[:1] + ls[2:],
    "records_reordered": lambda ls: [ls[1], ls[0], *ls[2:]],
    "record_duplicated": lambda ls: [ls[0], *ls],
    "last_record_truncated": lambda ls: ls[:-2] + ls[-1:],
    "checkpoint_size_changed": lambda ls: _edit(ls, -1, lambda d: d.update(size=d["size"] - 1)),
    "checkpoint_missing": lambda ls: ls[:-1],
}


def tamper_export(export: Path, keys_json: str, figures: Figures) -> dict[str, str]:
    """Every tamper case on a real export; returns case -> verify error (missing = missed)."""
    lines = export.read_text().splitlines()
    ring = KeyRing.from_json(keys_json)
    verify_export(lines, ring)  # the untouched export verifies
    detected: dict[str, str] = {}
    for name, tamper in TAMPER_CASES.items():
        figures.tamper_cases += 1
        try:
            verify_export(tamper(lines), ring)
        except (ExportVerificationError, ValueError, KeyError) as exc:
            detected[name] = str(exc)[:200]
            figures.tamper_detected += 1
    return detected
