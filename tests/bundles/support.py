"""Helpers for the bundle tests: the fixed policy dir, tamper helpers, a real OPA, uvicorn."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import socket
import subprocess
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from engine.bundles import SigningAlg

REPO = Path(__file__).resolve().parents[2]
ASSETS = REPO / "tests" / "assets" / "bundles"
POLICY_SRC = ASSETS / "policy"
KEY_ID = "test-key"
ALG = SigningAlg.ES256  # the default algorithm (OPA config files cannot use EdDSA)
START_DEADLINE_S = 30.0  # generous upper bound for OPA to start; never asserted on


def find_opa() -> Path:
    """The real OPA binary: $OPA_BIN, the pinned .tools/bin/opa, or opa on PATH."""
    for candidate in (os.environ.get("OPA_BIN"), str(REPO / ".tools/bin/opa"), shutil.which("opa")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    pytest.fail("the OPA binary is required (run scripts/install-opa.sh)")


@dataclass(frozen=True)
class KeyPair:
    private: Path
    public: Path
    alg: SigningAlg


# --- tamper helpers: rewrite a bundle's entries without re-signing ----------------------


Members = list[tuple[tarfile.TarInfo, bytes]]


def read_tar(path: Path) -> Members:
    with tarfile.open(path, "r:gz") as tar:
        out = []
        for m in tar.getmembers():
            fh = tar.extractfile(m)
            out.append((m, fh.read() if fh else b""))
        return out


def write_tar(path: Path, members: Members) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if info.isreg():
                info = tarfile.TarInfo(info.name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    path.write_bytes(gzip.compress(buf.getvalue(), mtime=0))
    return path


Transform = Callable[[Members], Members]


def rewrite(src: Path, dst: Path, transform: Transform) -> Path:
    """Copy bundle ``src`` to ``dst`` with ``transform`` applied to its (info, bytes) list."""
    return write_tar(dst, transform(read_tar(src)))


def flip_rego_byte(members: Members) -> Members:
    """Flip the case of one comment byte of the first .rego file: the policy still parses,
    only its digest changes."""
    out = []
    done = False
    for info, data in members:
        if not done and info.name.endswith(".rego"):
            i = data.index(b"#") + 2
            data = data[:i] + bytes([data[i] ^ 0x20]) + data[i + 1 :]
            done = True
        out.append((info, data))
    assert done
    return out


def drop_signatures(members: Members) -> Members:
    return [(i, d) for i, d in members if not i.name.endswith(".signatures.json")]


def add_file(name: str, data: bytes) -> Transform:
    def transform(members: Members) -> Members:
        return [*members, (tarfile.TarInfo(name), data)]

    return transform


# --- a real OPA server on a unix socket (no port races) ----------------------------------


@dataclass
class OpaServer:
    proc: subprocess.Popen[bytes]
    client: httpx.Client
    log: Path
    sock: Path

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


def _listening(sock: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(sock))
        except OSError:
            return False
    return True


def wait_healthy(server: OpaServer, *, path: str = "/health?bundles") -> bool:
    """Poll ``path`` until 200 (True) or until OPA exits (False); fails after the deadline."""
    deadline = time.monotonic() + START_DEADLINE_S
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            return False
        # NOTE: probe with a plain socket first; httpcore leaks the socket of a failed
        # unix-socket connect, which filterwarnings=error turns into a test failure.
        if _listening(server.sock) and server.client.get(path).status_code == 200:
            return True
        time.sleep(0.05)
    pytest.fail(
        f"OPA neither became healthy nor exited within {START_DEADLINE_S}s:\n{server.logs()}"
    )


@contextmanager
def opa_server(opa: Path, args: list[str], workdir: Path) -> Iterator[OpaServer]:
    """Start ``opa run --server`` on a unix socket in ``workdir``; stop it afterwards."""
    sock = workdir / "opa.sock"
    log = workdir / "opa.log"
    with log.open("wb") as log_fh:
        proc = subprocess.Popen(
            [
                str(opa),
                "run",
                "--server",
                "--addr",
                f"unix://{sock}",
                "--log-level",
                "debug",
                *args,
            ],
            stdout=log_fh,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
    client = httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)), base_url="http://opa")
    try:
        yield OpaServer(proc, client, log, sock)
    finally:
        client.close()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def opa_verify_flags(public: Path, alg: SigningAlg, key_id: str = KEY_ID) -> list[str]:
    """The flags that make ``opa run``/``opa build`` verify a signed bundle."""
    return [
        "--verification-key",
        str(public),
        "--verification-key-id",
        key_id,
        "--signing-alg",
        alg.value,
    ]


# --- the FastAPI app under a real uvicorn, in a thread, on a pre-bound port -------------


@contextmanager
def serve_app(app: FastAPI) -> Iterator[str]:
    """Run ``app`` under uvicorn on 127.0.0.1 (a pre-bound socket: no port race)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + START_DEADLINE_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                pytest.fail("uvicorn did not start")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=START_DEADLINE_S)
        sock.close()
