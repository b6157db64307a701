"""The raw-socket OPA client: against the real OPA (unix socket and TCP), and against a small
scripted socket server for the HTTP corner cases OPA does not produce."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from engine.engines.http_wire import MAX_BODY_BYTES, MAX_HEADER_BYTES
from engine.engines.opa_http import OpaClient
from engine.errors import EngineUnavailable, PolicyEvalError
from engine.models.common import Verdict

POLICY = """package t

default decision := {"verdict": "pause", "reasons": [], "warnings": []}

decision := {"verdict": "allow", "reasons": [], "warnings": []} if input.ok == true

echo := input

big := numbers.range(1, 20000)
"""

# About 3 KB, nested, like a real input document.
DOCUMENT = {
    "ok": True,
    "release": {"id": "payments-1.4.2", "service": "payments", "environment": "staging"},
    "findings": [
        {"id": f"CVE-2024-{n:05d}", "severity": "low", "package": {"name": f"lib{n}"}}
        for n in range(30)
    ],
}


def _wait_for(condition: Callable[[], bool], *, limit_s: float = 30.0) -> bool:
    """Poll until ``condition`` holds (a bound on waiting, never an assertion on speed)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture()
def short_dir() -> Iterator[Path]:
    """A directory with a short path: unix socket paths are limited to ~107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="rg-http-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


# -- the real OPA ------------------------------------------------------------------------


@dataclass
class Opa:
    """A real ``opa run --server`` and the client address that reaches it."""

    binary: Path
    policy: Path
    listen: str
    address: str
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            argv = [
                str(self.binary), "run", "--server", "--addr", self.listen,
                "--skip-version-check", "--log-level", "error", str(self.policy),
            ]  # fmt: skip
            self.popen = subprocess.Popen(  # noqa: S603 - fixed argv
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        probe = OpaClient(self.address, timeout=1.0)
        try:
            assert _wait_for(lambda: probe.healthy(bundles=False)), self.log.read_text()
        finally:
            probe.close()

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()
            self.popen.wait(timeout=30)
        self.popen = None


@contextmanager
def _real_opa(binary: Path, where: Path, transport: str) -> Iterator[Opa]:
    policy = where / "policy"
    policy.mkdir()
    (policy / "t.rego").write_text(POLICY)
    if transport == "unix":
        listen = f"unix://{where / 'opa.sock'}"
        address = listen
    else:
        port = _free_port()
        listen, address = f"127.0.0.1:{port}", f"http://127.0.0.1:{port}"
    opa = Opa(binary, policy, listen, address, where / "opa.log")
    opa.start()
    try:
        yield opa
    finally:
        opa.stop()


@pytest.fixture(params=["unix", "tcp"])
def opa(request: pytest.FixtureRequest, opa_binary: Path, short_dir: Path) -> Iterator[Opa]:
    with _real_opa(opa_binary, short_dir, request.param) as server:
        yield server


@pytest.fixture()
def client(opa: Opa) -> Iterator[OpaClient]:
    c = OpaClient(opa.address, timeout=5.0)
    yield c
    c.close()


def test_evaluates_on_one_keep_alive_connection(client: OpaClient) -> None:
    assert client.evaluate("t/decision", DOCUMENT).verdict is Verdict.ALLOW
    assert client.evaluate("t/decision", {**DOCUMENT, "ok": False}).verdict is Verdict.PAUSE
    first = client._local.sock
    for _ in range(50):
        assert client.evaluate("t/decision", DOCUMENT).verdict is Verdict.ALLOW
    assert client._local.sock is first
    assert client._all == {first}


def test_request_round_trips_documents(client: OpaClient) -> None:
    body = json.dumps({"input": DOCUMENT}).encode()
    status, raw = client.request("POST", "/v1/data/t/echo", body)
    assert status == 200
    assert json.loads(raw) == {"result": DOCUMENT}
    # ~1.5 MB each way: many sends and receives, a chunked answer.
    large = {"rows": [{"n": n, "text": "x" * 40} for n in range(25_000)]}
    status, raw = client.request("POST", "/v1/data/t/echo", json.dumps({"input": large}).encode())
    assert status == 200
    assert json.loads(raw) == {"result": large}


def _raw_exchange(opa: Opa, request: bytes) -> bytes:
    """One request on a plain socket, read to the end (``Connection: close``)."""
    if opa.address.startswith("unix://"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(10)
        sock.connect(opa.address.removeprefix("unix://"))
    else:
        host, port = opa.address.removeprefix("http://").split(":")
        sock = socket.create_connection((host, int(port)), timeout=10)
    with sock:
        sock.sendall(request)
        parts = []
        while chunk := sock.recv(65536):
            parts.append(chunk)
    return b"".join(parts)


def test_reads_opas_chunked_answers(opa: Opa, client: OpaClient) -> None:
    raw = _raw_exchange(opa, b"GET /v1/data/t/big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b"\r\ntransfer-encoding: chunked\r\n" in raw.split(b"\r\n\r\n")[0].lower() + b"\r\n"
    for _ in range(3):  # and the connection stays usable after each chunked body
        status, body = client.request("GET", "/v1/data/t/big")
        assert status == 200
        assert json.loads(body) == {"result": list(range(1, 20001))}
    assert len(client._all) == 1


def test_reports_opas_error_answers(client: OpaClient) -> None:
    status, raw = client.request("POST", "/v1/data/t/decision", b"{not json")
    assert status == 400
    assert json.loads(raw)["code"] == "invalid_parameter"
    with pytest.raises(PolicyEvalError, match="undefined"):
        client.evaluate("t/nothing_here", DOCUMENT)
    with pytest.raises(PolicyEvalError, match="malformed policy result"):
        client.evaluate("t/echo", DOCUMENT)
    status, raw = client.request("POST", "/v1/data/t/decision")  # no body: no input
    assert status == 200
    assert json.loads(raw)["result"]["verdict"] == "pause"


def test_health(opa: Opa, client: OpaClient) -> None:
    assert client.healthy()
    assert client.healthy(bundles=False)
    opa.stop()
    assert not client.healthy()
    assert not client.healthy(bundles=False)


def test_reconnects_after_opa_restarts(opa: Opa, client: OpaClient) -> None:
    """The keep-alive connection dies with OPA: the one retry uses a fresh connection."""
    assert client.evaluate("t/decision", DOCUMENT).verdict is Verdict.ALLOW
    stale = client._local.sock
    opa.stop()
    opa.start()
    assert client.evaluate("t/decision", DOCUMENT).verdict is Verdict.ALLOW
    assert client._local.sock is not stale
    assert stale.fileno() == -1


def test_down_opa_is_unavailable_at_once(opa: Opa, client: OpaClient) -> None:
    assert client.evaluate("t/decision", DOCUMENT).verdict is Verdict.ALLOW
    opa.stop()
    # Refused (TCP) or no socket file (unix): no waiting for the timeout.
    slow = OpaClient(opa.address, timeout=120.0)
    try:
        started = time.monotonic()
        for each in (client, slow):
            with pytest.raises(EngineUnavailable, match="OPA is unreachable at"):
                each.evaluate("t/decision", DOCUMENT)
        assert time.monotonic() - started < 60
    finally:
        slow.close()


def test_one_connection_per_thread_and_close_closes_them_all(client: OpaClient) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def work() -> None:
        try:
            barrier.wait(timeout=30)
            for n in range(30):
                verdict = client.evaluate("t/decision", {**DOCUMENT, "ok": n % 2 == 0}).verdict
                assert verdict is (Verdict.ALLOW if n % 2 == 0 else Verdict.PAUSE)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    socks = set(client._all)
    assert len(socks) == 6
    client.close()
    assert client._all == set()
    assert all(sock.fileno() == -1 for sock in socks)
    assert client.evaluate("t/decision", DOCUMENT).verdict is Verdict.ALLOW


def test_unsupported_address() -> None:
    with pytest.raises(EngineUnavailable, match="unsupported OPA address"):
        OpaClient("https://opa.example:8181", timeout=1.0)


def test_missing_unix_socket_is_unreachable(short_dir: Path) -> None:
    c = OpaClient(f"unix://{short_dir / 'nothing.sock'}", timeout=120.0)
    with pytest.raises(EngineUnavailable, match="unreachable.*No such file"):
        c.request("GET", "/health")
    assert c._all == set()


# -- a scripted socket server for what OPA does not do -----------------------------------


@dataclass
class Step:
    """The answer to one request: ``pieces`` sent one by one, then what to do."""

    pieces: tuple[bytes, ...]
    then: str = "keep"  # keep | close | reset | hang
    pause: float = 0.02  # between pieces, so that they arrive in separate reads


def _ok(body: bytes = b'{"result":{}}', *headers: bytes) -> bytes:
    head = b"".join(h + b"\r\n" for h in headers)
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), head, body)


H = b"HTTP/1.1 200 OK\r\n"
CH = H + b"Transfer-Encoding: chunked\r\n\r\n"


@dataclass
class FakeServer:
    """A real socket server (TCP or unix) answering requests from a script of steps.

    A request beyond the script is answered by closing the connection.
    """

    steps: list[Step]
    unix_path: Path | None = None
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0

    def __post_init__(self) -> None:
        if self.unix_path is not None:
            self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._listener.bind(str(self.unix_path))
            self.address = f"unix://{self.unix_path}"
        else:
            self._listener = socket.socket()
            self._listener.bind(("127.0.0.1", 0))
            self.address = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._listener.listen(8)
        self._listener.settimeout(0.05)  # accept() wakes up to notice close()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._workers: list[threading.Thread] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            self._open.append(conn)
            conn.settimeout(30)
            worker = threading.Thread(target=self._converse, args=(conn,), daemon=True)
            self._workers.append(worker)
            worker.start()

    def _read_request(self, conn: socket.socket) -> bytes | None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            body += conn.recv(65536)
        return head + b"\r\n\r\n" + body

    def _converse(self, conn: socket.socket) -> None:
        try:
            self._answer(conn)
        except OSError:
            pass  # the client went away, or close() closed the connection

    def _answer(self, conn: socket.socket) -> None:
        while (request := self._read_request(conn)) is not None:
            with self._lock:
                self.requests.append(request)
                step = self.steps.pop(0) if self.steps else None
            if step is None:
                conn.close()
                return
            for n, piece in enumerate(step.pieces):
                if n:
                    time.sleep(step.pause)
                conn.sendall(piece)
            if step.then == "hang":
                self._stop.wait(30)
                return
            if step.then == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
                return
            if step.then == "close":
                conn.close()
                return

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self._listener.close()
        for conn in self._open:
            conn.close()
        for worker in self._workers:
            worker.join(timeout=30)


@contextmanager
def _fake(*steps: Step, timeout: float = 5.0) -> Iterator[tuple[FakeServer, OpaClient]]:
    server = FakeServer(list(steps))
    c = OpaClient(server.address, timeout=timeout)
    try:
        yield server, c
    finally:
        c.close()
        server.close()


def test_request_bytes_over_tcp() -> None:
    with _fake(Step((_ok(),)), Step((_ok(),)), Step((_ok(),))) as (server, c):
        port = c.address.rsplit(":", 1)[1]
        c.request("POST", "/v1/data/x", b'{"input":{}}')
        c.request("GET", "/health")
        c.request("POST", "/v1/data/x")
    host = b"Host: 127.0.0.1:%s\r\nAccept-Encoding: identity\r\n" % port.encode()
    assert server.requests == [
        b"POST /v1/data/x HTTP/1.1\r\n" + host + b"Content-Type: application/json\r\n"
        b'Content-Length: 12\r\n\r\n{"input":{}}',
        b"GET /health HTTP/1.1\r\n" + host + b"\r\n",
        b"POST /v1/data/x HTTP/1.1\r\n" + host + b"Content-Length: 0\r\n\r\n",
    ]
    assert server.connections == 1


def test_request_bytes_over_a_unix_socket(short_dir: Path) -> None:
    server = FakeServer([Step((_ok(),))], unix_path=short_dir / "fake.sock")
    c = OpaClient(server.address, timeout=5.0)
    try:
        assert c.request("GET", "/health?bundles") == (200, b'{"result":{}}')
    finally:
        c.close()
        server.close()
    assert server.requests == [
        b"GET /health?bundles HTTP/1.1\r\nHost: localhost\r\nAccept-Encoding: identity\r\n\r\n"
    ]


@pytest.mark.parametrize("path", ["/v1/data/a b", "/v1/data/x\r\nX-Injected: 1", "/v1/dätä"])
def test_invalid_request_target_is_refused_before_sending(path: str) -> None:
    with _fake() as (server, c):
        with pytest.raises(EngineUnavailable, match="invalid OPA request"):
            c.request("GET", path)
    assert server.requests == []


CHUNKED = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"5\r\n",
    b'{"res\r\n',
    b"A;name=value\r\n",  # a chunk extension, upper-case hex
    b'ult":[1,2,\r\n',
    b"3\r\n3]}\r\n0\r\n",
    b"X-Trailer: 1\r\n\r\n",
)


@pytest.mark.parametrize(
    "pieces",
    [
        CHUNKED,
        (b"".join(CHUNKED),),
        (b"".join(CHUNKED).replace(b"Transfer-Encoding: chunked", b"TRANSFER-encoding:  chunked"),),
    ],
    ids=["split", "whole", "header-case"],
)
def test_chunked_body(pieces: tuple[bytes, ...]) -> None:
    with _fake(Step(pieces), Step((_ok(b"next"),))) as (server, c):
        assert c.request("GET", "/v1/data/x") == (200, b'{"result":[1,2,3]}')
        assert c.request("GET", "/v1/data/x") == (200, b"next")
    assert server.connections == 1


def test_chunked_framing_wins_over_content_length() -> None:
    # Framed both ways (RFC 9112 6.3): read as chunked, and do not reuse the connection.
    reply = H + b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    with _fake(Step((reply,), then="hang"), Step((_ok(b"next"),))) as (server, c):
        assert c.request("GET", "/a") == (200, b"abc")
        assert c.request("GET", "/b") == (200, b"next")
    assert server.connections == 2


def test_content_length_body_over_many_reads() -> None:
    body = json.dumps({"result": list(range(40_000))}).encode()
    head = b"HTTP/1.1 200 OK\r\ncontent-LENGTH: %d\r\n" % len(body)
    pieces = (head, b"\r\n" + body[:10], body[10:100], body[100:])
    with _fake(Step(pieces), Step((_ok(b"next"),))) as (server, c):
        assert c.request("GET", "/v1/data/x") == (200, body)
        assert c.request("GET", "/v1/data/x") == (200, b"next")
    assert server.connections == 1


def test_connection_close_is_honoured() -> None:
    with _fake(
        Step((_ok(b"one", b"Connection: close"),), then="hang"),
        Step((_ok(b"two", b"connection: Keep-Alive, CLOSE"),), then="hang"),
        Step((_ok(b"three"),)),
    ) as (server, c):
        # The server keeps each connection open: only the header makes the client drop it.
        assert c.request("GET", "/a") == (200, b"one")
        assert c.request("GET", "/b") == (200, b"two")
        assert c.request("GET", "/c") == (200, b"three")
    assert server.connections == 3


def test_body_delimited_by_close() -> None:
    with _fake(
        Step((b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\none, ", b"two"), "close"),
        Step((_ok(b"next"),)),
    ) as (server, c):
        assert c.request("GET", "/a") == (200, b"one, two")
        assert c.request("GET", "/b") == (200, b"next")
    assert server.connections == 2


def test_http_1_0_answers() -> None:
    with _fake(
        Step((b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",), then="hang"),
        Step((b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nka",)),
        Step((_ok(b"next"),)),
    ) as (server, c):
        assert c.request("GET", "/a") == (200, b"ok")
        assert c.request("GET", "/b") == (200, b"ka")
        assert c.request("GET", "/c") == (200, b"next")
    assert server.connections == 2


def test_interim_and_bodiless_answers() -> None:
    with _fake(
        Step((b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 204 No Content\r\n\r\n")),
        Step((b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n",)),  # to HEAD: no body follows
        Step((b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",)),
        Step((_ok(b"next"),)),
    ) as (server, c):
        assert c.request("POST", "/a", b"{}") == (204, b"")
        assert c.request("HEAD", "/b") == (200, b"")
        assert c.request("GET", "/c") == (200, b"")
        assert c.request("GET", "/d") == (200, b"next")
    assert server.connections == 1


def test_bare_lf_lines_and_folded_headers() -> None:
    with _fake(
        Step((b"HTTP/1.1 200 OK\nX-Long: a\n b\nContent-Length: 3\n\nabc",)),
        Step(
            (b"HTTP/1.1 200 OK\r\nConnection: keep-alive,\r\n close\r\nContent-Length: 0\r\n\r\n",)
        ),
        Step((_ok(b"next"),)),
    ) as (server, c):
        assert c.request("GET", "/a") == (200, b"abc")
        assert c.request("GET", "/b") == (200, b"")  # the folded "close" counts
        assert c.request("GET", "/c") == (200, b"next")
    assert server.connections == 2


def test_extra_bytes_after_an_answer_are_not_taken_for_the_next() -> None:
    with _fake(
        Step((_ok(b"one") + b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale",), then="hang"),
        Step((_ok(b"two"),)),
    ) as (server, c):
        assert c.request("GET", "/a") == (200, b"one")
        assert c.request("GET", "/b") == (200, b"two")
    assert server.connections == 2


def test_non_200_answer_is_a_policy_error() -> None:
    with _fake(Step((b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy",))) as (
        _,
        c,
    ):
        with pytest.raises(PolicyEvalError, match="HTTP 503: busy"):
            c.evaluate("x", {})


MALFORMED = {
    "no-status-code": b"HTTP/1.1 OK\r\nContent-Length: 2\r\n\r\n{}",
    "http-2": b"HTTP/2 200 OK\r\nContent-Length: 2\r\n\r\n{}",
    "not-http": b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
    "four-digit-status": b"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\n{}",
    "header-without-colon": H + b"Content-Length 2\r\n\r\n{}",
    "space-before-colon": H + b"Content-Length : 2\r\n\r\n{}",
    "length-not-a-number": H + b"Content-Length: 2x\r\n\r\n{}",
    "two-lengths": H + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    "huge-length-digits": H + b"Content-Length: " + b"9" * 5000 + b"\r\n\r\n{}",
    "body-too-large": H + b"Content-Length: %d\r\n\r\n{}" % (MAX_BODY_BYTES + 1),
    "gzip-transfer": H + b"Transfer-Encoding: gzip, chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    "gzip-content": H + b"Content-Encoding: gzip\r\nContent-Length: 2\r\n\r\n{}",
    "bad-chunk-size": CH + b"zz\r\n{}\r\n0\r\n\r\n",
    "signed-chunk-size": CH + b"+2\r\n{}\r\n0\r\n\r\n",
    "chunk-overrun": CH + b"1\r\n{}\r\n0\r\n\r\n",
    "chunked-too-large": CH + b"%x\r\n{}" % (MAX_BODY_BYTES + 1),
    "upgrade": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n",
    "headers-too-large": H + b"X-A: a\r\n" * 10_000,
    "headers-too-large-complete": H + b"X-A: a\r\n" * 10_000 + b"\r\n",
}


@pytest.mark.parametrize("reply", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_answers_are_refused_without_waiting(reply: bytes) -> None:
    # The server keeps the connection open: a parser waiting for more would time out instead.
    with _fake(Step((reply,), then="hang"), Step((_ok(b"next"),)), timeout=20.0) as (server, c):
        with pytest.raises(EngineUnavailable, match="sent a malformed response"):
            c.request("GET", "/v1/data/x")
        assert c.request("GET", "/v1/data/x") == (200, b"next")  # on a new connection
    assert server.connections == 2


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{}",
        b"HTTP/1.1 200 OK\r\nContent-Le",
    ],
    ids=["short-body", "short-chunk", "inside-headers"],
)
def test_answer_cut_short_is_refused_not_retried(reply: bytes) -> None:
    with _fake(Step((_ok(b"first"),)), Step((reply,), then="close"), Step((_ok(),))) as (
        server,
        c,
    ):
        assert c.request("GET", "/a") == (200, b"first")
        with pytest.raises(EngineUnavailable, match="malformed response: the connection closed"):
            c.request("GET", "/b")
    assert server.connections == 1


def test_header_limit_counts_the_whole_section() -> None:
    fits = b"X-A: " + b"a" * (MAX_HEADER_BYTES - 200) + b"\r\n"
    with _fake(Step((b"HTTP/1.1 200 OK\r\n" + fits + b"Content-Length: 2\r\n\r\n{}",))) as (_, c):
        assert c.request("GET", "/a") == (200, b"{}")


@pytest.mark.parametrize("then", ["close", "reset"])
def test_keep_alive_connection_closed_between_requests(then: str) -> None:
    with _fake(Step((_ok(b"one"),), then=then), Step((_ok(b"two"),))) as (server, c):
        assert c.request("GET", "/a") == (200, b"one")
        time.sleep(0.1)  # the close reaches the client's socket before it is reused
        assert c.request("POST", "/b", b"{}") == (200, b"two")
    assert server.connections == 2
    assert [r.split(b" ")[1] for r in server.requests] == [b"/a", b"/b"]


def test_only_one_retry() -> None:
    # Each new connection is closed without an answer: the retry fails too, and then it stops.
    with _fake(Step((_ok(b"one"),), then="close"), Step((), "close"), Step((), "close")) as (
        server,
        c,
    ):
        assert c.request("GET", "/a") == (200, b"one")
        time.sleep(0.1)
        with pytest.raises(EngineUnavailable, match="unreachable.*closed without a response"):
            c.request("GET", "/b")
    assert server.connections == 2


def test_fresh_connection_closed_without_answer_is_not_retried() -> None:
    with _fake(Step((), "close"), Step((_ok(),))) as (server, c):
        with pytest.raises(EngineUnavailable, match="unreachable.*closed without a response"):
            c.request("GET", "/a")
    assert server.connections == 1


@pytest.mark.parametrize(
    "pieces",
    [(), (b"HTTP/1.1 200 OK\r\n",), (b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{}",)],
    ids=["silent", "stalls-in-headers", "stalls-in-body"],
)
def test_silent_server_times_out(pieces: tuple[bytes, ...]) -> None:
    with _fake(Step(pieces, then="hang"), timeout=0.3) as (server, c):
        with pytest.raises(EngineUnavailable, match=r"OPA did not answer within 0\.3s"):
            c.request("GET", "/a")
        assert c._all == set()  # the connection is not reused after a timeout
    assert server.connections == 1


def test_timeout_bounds_the_whole_call() -> None:
    """A server trickling bytes never lets one call outlast its timeout."""
    trickle = tuple(b"X-Slow: %d\r\n" % n for n in range(200))
    with _fake(Step((b"HTTP/1.1 200 OK\r\n", *trickle), then="hang"), timeout=0.5) as (_, c):
        started = time.monotonic()
        with pytest.raises(EngineUnavailable, match="did not answer within"):
            c.request("GET", "/a")
        # Per-read timeouts alone would wait for all 200 pieces (4 s); the deadline stops it.
        assert time.monotonic() - started < 3.0


class _Interrupted(Exception):
    pass


def _interrupt(signum: int, frame: object) -> None:
    raise _Interrupted


@pytest.mark.parametrize(
    "first", [b"", b"HTTP/1.1 100 Continue\r\n\r\n"], ids=["before-answer", "mid-answer"]
)
def test_interrupted_exchange_leaves_nothing_for_the_next_call(first: bytes) -> None:
    """An exception out of a signal handler during an exchange: the answer arrives later and
    must never be taken for the next call's answer."""
    assert threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGUSR1, _interrupt)
    try:
        with _fake(
            Step((first, _ok(b"stale")), pause=0.5),
            Step((_ok(b"fresh"),)),
        ) as (server, c):
            kill = (threading.main_thread().ident, signal.SIGUSR1)
            timer = threading.Timer(0.2, signal.pthread_kill, kill)
            timer.start()
            with pytest.raises(_Interrupted):
                c.request("GET", "/a")
            timer.join()
            time.sleep(0.5)  # the rest of the first answer is in by now
            assert c.request("GET", "/b") == (200, b"fresh")
        assert server.connections == 2
    finally:
        signal.signal(signal.SIGUSR1, previous)
