"""Services under test: in-process apps, ``releasegate serve`` subprocesses, client receipts.

Waiting is bounded by generous deadlines that are never asserted on (no timed assertions).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.auth import ROLES
from engine.auth.sql import database_url
from engine.auth.tokens import TokenStore
from hardening.seeds import REPO

START_DEADLINE_S = 90.0
CLI = [sys.executable, "-m", "engine.adapters.cli"]


def free_port() -> int:
    """A port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def create_tokens(state_dir: Path, url: str | None = None) -> dict[str, str]:
    """One token per role (subject ``<role>-hardening``), stored hashed in the state."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    store = TokenStore(database_url(state_dir, url))
    try:
        return {role: store.create(f"{role}-hardening", [role])[0] for role in ROLES}
    finally:
        store.close()


@dataclass(frozen=True)
class Receipt:
    """What a client received for one decision."""

    decision_id: str
    index: int
    record_hash: str
    verdict: str


@dataclass(frozen=True)
class Reply:
    """One HTTP answer."""

    status: int
    headers: Mapping[str, str]
    body: Any
    raw: bytes

    def receipt(self) -> Receipt | None:
        """The receipt of a 200 decision, else None."""
        if self.status != 200 or not isinstance(self.body, dict) or "log" not in self.body:
            return None
        log = self.body["log"]
        return Receipt(
            self.body["decision_id"], int(log["index"]), log["record_hash"], self.body["verdict"]
        )


def call(
    base: str,
    method: str,
    path: str,
    *,
    token: str | None = None,
    body: Any = None,
    raw: bytes | None = None,
    timeout: float = 60.0,
    context: Any = None,
    headers: Mapping[str, str] | None = None,
) -> Reply:
    """One request with urllib (no connection reuse: a killed server shows as OSError)."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(base + path, data=data, method=method)  # noqa: S310
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    for name, value in (headers or {}).items():
        req.add_header(name, value)
    try:
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:  # noqa: S310
                content, status, hdrs = resp.read(), resp.status, dict(resp.headers)
        except urllib.error.HTTPError as exc:
            content, status, hdrs = exc.read(), exc.code, dict(exc.headers)
    except http.client.HTTPException as exc:
        # A server killed between an answer's head and its body leaves IncompleteRead, which
        # is no OSError: a cut answer is a failed connection like a reset, for every caller.
        raise ConnectionError(f"the answer was cut short: {exc!r}") from exc
    lowered = {k.lower(): v for k, v in hdrs.items()}
    parsed: Any = None
    if "json" in lowered.get("content-type", ""):
        try:
            parsed = json.loads(content)
        except ValueError:
            parsed = None
    return Reply(status, lowered, parsed, content)


@dataclass
class ServeProcess:
    """A running ``releasegate serve`` (stdout and stderr go to files, read after exit)."""

    process: subprocess.Popen[bytes]
    url: str
    state_dir: Path
    stdout_path: Path
    stderr_path: Path
    tokens: dict[str, str] = field(default_factory=dict)

    def call(self, method: str, path: str, **kw: Any) -> Reply:
        """A request to this server."""
        return call(self.url, method, path, **kw)

    def decide(self, body: Any, *, role: str = "ci", **kw: Any) -> Reply:
        """``POST /v1/decisions``."""
        return self.call("POST", "/v1/decisions", token=self.tokens[role], body=body, **kw)

    def kill9(self) -> None:
        """SIGKILL, no goodbye."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=60)

    def stop(self) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)

    def output(self) -> str:
        """stdout + stderr so far."""
        return self.stdout_path.read_text(errors="replace") + self.stderr_path.read_text(
            errors="replace"
        )

    def opa_pid(self) -> int:
        """The managed OPA's pid, from the start summary."""
        for line in self.stdout_path.read_text().splitlines():
            if "(managed, pid" in line:
                return int(line.rsplit("pid", 1)[1].strip(" )"))
        raise RuntimeError("no managed OPA pid in the serve summary")


def serve_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a serve subprocess: ours, minus RELEASEGATE_* leaking in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELEASEGATE_")}
    env.update(extra or {})
    return env


def start_serve(
    state_dir: Path,
    *,
    env: Mapping[str, str] | None = None,
    args: list[str] | None = None,
    scheme: str = "http",
    context: Any = None,
    port: int | None = None,
    wait: bool = True,
) -> ServeProcess:
    """Start ``releasegate serve`` on a free port; wait for ``/healthz`` unless ``wait=False``."""
    port = port or free_port()
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    logs = state_dir.parent / f"serve-{state_dir.name}-{port}"
    out, err = Path(f"{logs}.out"), Path(f"{logs}.err")
    argv = [*CLI, "serve", "--state-dir", str(state_dir), "--port", str(port), *(args or [])]
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(  # noqa: S603 - fixed argv
            argv, stdout=stdout, stderr=stderr, env=serve_env(env), cwd=REPO
        )
    server = ServeProcess(process, f"{scheme}://127.0.0.1:{port}", state_dir, out, err)
    if wait:
        wait_ready(server, context=context)
    return server


def wait_ready(server: ServeProcess, *, context: Any = None) -> None:
    """Poll ``/healthz`` and the printed summary; raise if serve exits or never answers."""
    deadline = time.monotonic() + START_DEADLINE_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"serve exited {server.process.returncode}: {server.output()}")
        try:
            if call(server.url, "GET", "/healthz", timeout=2, context=context).status == 200:
                if "url:" in server.stdout_path.read_text():
                    return
        except OSError:
            pass
        time.sleep(0.1)
    server.process.kill()
    raise RuntimeError(f"serve did not answer /healthz: {server.output()}")


def cli(*argv: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``releasegate ARGV`` as a subprocess (exit code and output are the interface)."""
    return subprocess.run(  # noqa: S603 - fixed argv
        [*CLI, *argv], capture_output=True, text=True, env=serve_env(env), cwd=REPO, timeout=300,
        check=False,
    )  # fmt: skip


@dataclass(frozen=True)
class Audit:
    """The outcome of ``log export`` + ``log verify`` and the records by decision id."""

    export_code: int
    verify_code: int
    verify_output: str
    size: int
    hashes: dict[str, tuple[int, str]]
    """decision_id -> (index, record_hash)."""

    @property
    def intact(self) -> bool:
        """Export and verify both passed."""
        return self.export_code == 0 and self.verify_code == 0

    def lost(self, receipts: list[Receipt]) -> list[Receipt]:
        """Receipts whose decision is absent, or present with another index or hash."""
        return [r for r in receipts if self.hashes.get(r.decision_id) != (r.index, r.record_hash)]


def cli_in_process(*argv: str, env: Mapping[str, str] | None = None) -> tuple[int, str, str]:
    """``releasegate ARGV`` through ``main(argv)`` in this process: (exit, stdout, stderr)."""
    import contextlib
    import io

    from engine.adapters.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(argv))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return code, out.getvalue(), err.getvalue()


def audit(state_dir: Path, work: Path, *, db_url: str | None = None) -> Audit:
    """``releasegate log export`` then ``log verify`` with ``keys show``'s ring (the CLI's
    ``main`` in process: the same code and exit codes as the command)."""
    work.mkdir(parents=True, exist_ok=True)
    export, keys = work / "export.jsonl", work / "keys.json"
    env = {"RELEASEGATE_DATABASE_URL": db_url} if db_url else {}
    db = ["--database-url", db_url] if db_url else []
    exported = cli_in_process("log", "export", "--state-dir", str(state_dir), *db,
                              "--out", str(export), env=env)  # fmt: skip
    shown = cli_in_process("keys", "show", "--state-dir", str(state_dir), env=env)
    keys.write_text(shown[1])
    verified = cli_in_process("log", "verify", "--export", str(export), "--keys", str(keys))
    hashes: dict[str, tuple[int, str]] = {}
    size = 0
    if exported[0] == 0:
        lines = export.read_text().splitlines()
        for line in lines[:-1]:
            record = json.loads(line)
            hashes[record["decision_id"]] = (
                int(record["log"]["index"]),
                record["log"]["record_hash"],
            )
        size = len(lines) - 1
    return Audit(exported[0], verified[0], exported[2] + verified[1] + verified[2], size, hashes)


@contextmanager
def uvicorn_app(app: Any) -> Iterator[str]:
    """Serve ``app`` (lifespan on) under uvicorn in a thread on a pre-bound port."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="on", log_config=None)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + START_DEADLINE_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=START_DEADLINE_S)
        sock.close()
