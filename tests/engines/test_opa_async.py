"""The event-loop OPA client: the real OPA for answers and failures, a scripted socket server
for what OPA does not send (chunked bodies, closed keep-alive connections, bad heads)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engine.decision import evaluate_async
from engine.engines.base import DECISION_PATH, EncodedInput
from engine.engines.opa import ManagedOpaEngine, RemoteOpaEngine
from engine.engines.opa_async import AsyncOpaClient
from engine.engines.opa_http import input_body
from engine.engines.policy_source import PolicySource
from engine.errors import EngineUnavailable, PolicyEvalError
from engine.log.canonical import canonical_bytes
from engine.models.common import Verdict
from engine.models.decision import PolicyInfo
from tests.conftest import POLICIES
from tests.engines.test_opa import INPUT, _wait_for

RESULT = b'{"result":{"verdict":"allow","reasons":[],"warnings":[]}}'


@pytest.fixture()
def engine(opa_binary: Path) -> Iterator[ManagedOpaEngine]:
    eng = ManagedOpaEngine(PolicySource(POLICIES), opa=opa_binary, timeout=1.0)
    yield eng
    eng.close()


def test_managed_engine_answers_on_the_loop_as_it_does_in_a_thread(
    engine: ManagedOpaEngine,
) -> None:
    async def both() -> list[object]:
        return list(await asyncio.gather(*[engine.evaluate_async(INPUT) for _ in range(20)]))

    results = asyncio.run(both())
    assert results == [engine.evaluate(INPUT)] * 20
    assert results[0].verdict is Verdict.ALLOW  # type: ignore[attr-defined]
    # Twenty concurrent calls opened at most twenty connections and kept them for reuse.
    assert 1 <= len(engine._current.aclient._idle) <= 20


def test_killed_and_hung_opa_fail_closed_on_the_loop(engine: ManagedOpaEngine) -> None:
    os.kill(engine.pid, signal.SIGSTOP)
    try:
        with pytest.raises(EngineUnavailable, match="did not answer within 1.0s"):
            asyncio.run(engine.evaluate_async(INPUT))
        result = asyncio.run(evaluate_async(engine, INPUT))
        assert [r.code for r in result.reasons] == ["engine_unavailable"]
        assert result.verdict is Verdict.PAUSE
    finally:
        os.kill(engine.pid, signal.SIGCONT)
    old = engine.pid
    os.kill(old, signal.SIGKILL)
    assert _wait_for(lambda: engine._current.popen.poll() is not None or engine.pid != old)
    if engine.pid == old:
        assert asyncio.run(evaluate_async(engine, INPUT)).verdict is Verdict.PAUSE
    assert _wait_for(lambda: engine.pid != old and engine.healthy)
    assert asyncio.run(engine.evaluate_async(INPUT)).verdict is Verdict.ALLOW


def test_remote_engine_over_tcp(opa_binary: Path, tmp_path: Path) -> None:
    import subprocess

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(  # noqa: S603 - fixed argv
        [str(opa_binary), "run", "--server", "--addr", f"127.0.0.1:{port}",
         "--skip-version-check", "--bundle", str(POLICIES)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        client = AsyncOpaClient(f"http://127.0.0.1:{port}", timeout=2.0)
        assert _wait_for(lambda: _healthy(client))
        remote = RemoteOpaEngine(
            f"http://127.0.0.1:{port}", policy=PolicyInfo(revision="r", digest="sha256:" + "0" * 64)
        )
        assert asyncio.run(remote.evaluate_async(INPUT)).verdict is Verdict.ALLOW
        remote.close()
        client.close()
    finally:
        proc.terminate()
        proc.wait()


def _healthy(client: AsyncOpaClient) -> bool:
    try:
        status, _ = asyncio.run(client.request("GET", "/health"))
    except EngineUnavailable:
        return False
    return status == 200


def test_unreachable_and_closed_clients_raise(tmp_path: Path) -> None:
    client = AsyncOpaClient(f"unix://{tmp_path}/none.sock", timeout=1.0)
    with pytest.raises(EngineUnavailable, match="unreachable"):
        asyncio.run(client.evaluate(DECISION_PATH, INPUT))
    client.close()
    with pytest.raises(EngineUnavailable, match="closed"):
        asyncio.run(client.evaluate(DECISION_PATH, INPUT))
    with pytest.raises(EngineUnavailable, match="unsupported"):
        AsyncOpaClient("https://opa.example", timeout=1.0)


# -- a scripted server --------------------------------------------------------------------

Script = Callable[[socket.socket, int], None]
"""Handles one accepted connection (its index) and returns when done with it."""


class ScriptedServer:
    """A unix socket server running ``script`` for each connection, in a thread."""

    def __init__(self, path: Path, script: Script) -> None:
        self.path = path
        self.accepted = 0
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(str(path))
        self._sock.listen(16)
        self._script = script
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._serve, daemon=True)
        self._accept.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            index = self.accepted
            self.accepted += 1
            t = threading.Thread(target=self._run, args=(conn, index), daemon=True)
            t.start()
            self._threads.append(t)

    def _run(self, conn: socket.socket, index: int) -> None:
        with conn:
            try:
                self._script(conn, index)
            except OSError:
                pass

    def close(self) -> None:
        self._sock.close()
        for t in self._threads:
            t.join(timeout=5)


def _read_request(conn: socket.socket) -> bool:
    """Read one request (head + Content-Length body); False when the client closed."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return False
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    while len(body) < length:
        body += conn.recv(65536)
    return True


def _answer(body: bytes, *extra: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + b"".join(extra)
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


def _run_with(tmp_path: Path, script: Script, calls: int) -> tuple[list[object], int]:
    server = ScriptedServer(tmp_path / "s.sock", script)
    client = AsyncOpaClient(f"unix://{tmp_path}/s.sock", timeout=1.0)

    async def run() -> list[object]:
        out: list[object] = []
        for _ in range(calls):
            try:
                out.append(await client.evaluate(DECISION_PATH, INPUT))
            except (EngineUnavailable, PolicyEvalError) as exc:
                out.append(exc)
        return out

    try:
        return asyncio.run(run()), server.accepted
    finally:
        client.close()
        server.close()


def test_an_encoded_input_goes_to_opa_as_its_own_canonical_bytes(tmp_path: Path) -> None:
    bodies: list[bytes] = []

    def script(conn: socket.socket, index: int) -> None:
        data = b""
        while True:
            head, sep, body = data.partition(b"\r\n\r\n")
            length = next(
                (
                    int(v)
                    for k, _, v in (h.partition(b":") for h in head.split(b"\r\n"))
                    if k.lower() == b"content-length"
                ),
                -1,
            )
            if sep and len(body) >= length:
                bodies.append(body[:length])
                data = body[length:]
                conn.sendall(_answer(RESULT))
                continue
            chunk = conn.recv(65536)
            if not chunk:
                return
            data += chunk

    canonical = canonical_bytes(INPUT)
    server = ScriptedServer(tmp_path / "s.sock", script)
    client = AsyncOpaClient(f"unix://{tmp_path}/s.sock", timeout=1.0)

    async def run() -> None:
        await client.evaluate(DECISION_PATH, EncodedInput(INPUT, canonical))
        await client.evaluate(DECISION_PATH, INPUT)

    try:
        asyncio.run(run())
    finally:
        client.close()
        server.close()
    encoded, plain = bodies
    # What the decision's input_digest names is byte for byte what OPA read ...
    assert encoded == b'{"input":' + canonical + b"}"
    # ... and any other mapping is sent as JSON of the same document.
    assert json.loads(plain) == json.loads(encoded) == {"input": INPUT}


def test_keep_alive_connections_are_reused(tmp_path: Path) -> None:
    def script(conn: socket.socket, index: int) -> None:
        while _read_request(conn):
            conn.sendall(_answer(RESULT))

    results, accepted = _run_with(tmp_path, script, 5)
    assert [getattr(r, "verdict", r) for r in results] == [Verdict.ALLOW] * 5
    assert accepted == 1


def test_a_keep_alive_connection_closed_while_idle_is_retried_once(tmp_path: Path) -> None:
    def script(conn: socket.socket, index: int) -> None:
        if _read_request(conn):  # one answer, then close without saying so
            conn.sendall(_answer(RESULT))

    results, accepted = _run_with(tmp_path, script, 3)
    assert [getattr(r, "verdict", r) for r in results] == [Verdict.ALLOW] * 3
    assert accepted == 3


def test_connection_close_and_chunked_answers(tmp_path: Path) -> None:
    def script(conn: socket.socket, index: int) -> None:
        if not _read_request(conn):
            return
        if index == 0:  # chunked, with a chunk extension and a trailer; keep-alive
            half = len(RESULT) // 2
            parts = [RESULT[:half], RESULT[half:]]
            body = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in parts)
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                + body
                + b"0\r\nX-Trailer: yes\r\n\r\n"
            )
            if _read_request(conn):  # the connection was kept: answer with close
                conn.sendall(_answer(RESULT, b"Connection: close\r\n"))
        else:  # no length: the body ends with the connection
            conn.sendall(b"HTTP/1.1 200 OK\r\n\r\n" + RESULT)

    results, accepted = _run_with(tmp_path, script, 3)
    assert [getattr(r, "verdict", r) for r in results] == [Verdict.ALLOW] * 3
    assert accepted == 2  # chunked + close on the first connection, then a new one


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"SPDY/9 200 OK\r\n\r\n", "bad status line"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "bad header line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n", "bad Content-Length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk-size line"),
        (b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70_000 + b"\r\n\r\n", "response headers exceed"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{}",
            "connection closed after 2 of 100 body bytes",
        ),
        (_answer(b"not json"), "malformed JSON"),
        (_answer(b'{"result": {"verdict": "maybe"}}'), "malformed policy result"),
        (_answer(b"{}"), "undefined"),
    ],
)
def test_bad_answers_fail_closed(tmp_path: Path, answer: bytes, message: str) -> None:
    def script(conn: socket.socket, index: int) -> None:
        if _read_request(conn):
            conn.sendall(answer)

    results, _ = _run_with(tmp_path, script, 1)
    assert isinstance(results[0], EngineUnavailable | PolicyEvalError), results
    assert message in str(results[0])


def test_a_server_that_never_answers_times_out(tmp_path: Path) -> None:
    release = threading.Event()

    def script(conn: socket.socket, index: int) -> None:
        _read_request(conn)
        release.wait(10)

    try:
        results, _ = _run_with(tmp_path, script, 1)
    finally:
        release.set()
    assert isinstance(results[0], EngineUnavailable)
    assert "did not answer within 1.0s" in str(results[0])


BIG_INPUT = {"blob": "x" * (4 * 1024 * 1024)}  # more than a unix socket's buffer takes at once


def test_an_input_larger_than_the_sockets_buffer_is_sent_whole(tmp_path: Path) -> None:
    lengths: list[int] = []

    def script(conn: socket.socket, index: int) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        while len(body) < length:
            time.sleep(0.001)  # a slow reader: the client's first send cannot take it all
            body += conn.recv(65536)
        lengths.append(len(body))
        conn.sendall(_answer(RESULT))

    server = ScriptedServer(tmp_path / "s.sock", script)
    client = AsyncOpaClient(f"unix://{tmp_path}/s.sock", timeout=5.0)
    try:
        result = asyncio.run(client.evaluate(DECISION_PATH, BIG_INPUT))
    finally:
        client.close()
        server.close()
    assert result.verdict is Verdict.ALLOW
    assert lengths == [len(input_body(BIG_INPUT))]


def test_a_server_that_never_reads_times_out_while_sending(tmp_path: Path) -> None:
    release = threading.Event()

    def script(conn: socket.socket, index: int) -> None:
        release.wait(10)  # never reads: the client's send blocks on a full buffer

    server = ScriptedServer(tmp_path / "s.sock", script)
    client = AsyncOpaClient(f"unix://{tmp_path}/s.sock", timeout=1.0)
    try:
        with pytest.raises(EngineUnavailable, match="did not answer within 1.0s"):
            asyncio.run(client.evaluate(DECISION_PATH, BIG_INPUT))
    finally:
        release.set()
        client.close()
        server.close()
