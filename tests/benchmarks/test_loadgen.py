"""The load generator: its HTTP/1.1 reader, and whole runs against a real local server."""

from __future__ import annotations

import selectors
import socket
import threading
from collections import deque
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from benchmarks import loadgen
from benchmarks.loadgen import Spec, _Run, run

BODY = b'{"input": {"n": 1}}' * 100


class _Handler(BaseHTTPRequestHandler):
    """Answers by path: /ok (Content-Length), /chunked, /close (then closes), /teapot (418)."""

    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, int, str | None]] = []
    lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with self.lock:
            self.seen.append((self.path, len(body), self.headers.get("Authorization")))
        answer = b'{"result": true}'
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (answer[:5], answer[5:]):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
            return
        self.send_response(418 if self.path == "/teapot" else 200)
        self.send_header("Content-Length", str(len(answer)))
        if self.path == "/close":
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        """Quiet."""


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    _Handler.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


def _spec(server: ThreadingHTTPServer, path: str, **kw: Any) -> Spec:
    return Spec(
        host="127.0.0.1",
        port=server.server_address[1],
        path=path,
        body=BODY,
        headers={"Authorization": "Bearer t"},
        **kw,
    )


@pytest.mark.parametrize("path", ["/ok", "/chunked", "/close"])
def test_closed_loop_sends_exactly_the_requests_asked_for(
    server: ThreadingHTTPServer, path: str
) -> None:
    result = run(_spec(server, path, concurrency=4, requests=40, warmup=1))
    assert result["statuses"] == {"200": 40}
    assert len(result["latencies_ms"]) == 40 and min(result["latencies_ms"]) > 0
    assert result["first_error"] is None
    # 4 warm-up requests, then 40; every one whole, with the caller's headers.
    assert len(_Handler.seen) == 44
    assert set(_Handler.seen) == {(path, len(BODY), "Bearer t")}


def test_many_connections_leave_select_for_epoll(
    server: ThreadingHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loadgen, "SELECT_LIMIT", 2)
    few, many = _Run(_spec(server, "/ok", concurrency=2)), _Run(_spec(server, "/ok", concurrency=3))
    assert isinstance(few.selector, selectors.SelectSelector)
    assert not isinstance(many.selector, selectors.SelectSelector)
    few.close()
    many.close()
    result = run(_spec(server, "/ok", concurrency=3, requests=9, warmup=0))
    assert result["statuses"] == {"200": 9}


def test_unexpected_statuses_are_counted_and_the_first_is_quoted(
    server: ThreadingHTTPServer,
) -> None:
    result = run(_spec(server, "/teapot", concurrency=2, requests=6, warmup=0))
    assert result["statuses"] == {"418": 6}
    assert result["first_error"] == 'HTTP 418: {"result": true}'


def test_an_answer_without_the_expected_text_does_not_count_as_ok(
    server: ThreadingHTTPServer,
) -> None:
    # A fail-closed decision is a 200 too: only answers with the verdict count.
    met = run(_spec(server, "/ok", concurrency=2, requests=4, warmup=0, expect_text='"result"'))
    assert met["statuses"] == {"200": 4} and met["first_error"] is None
    spec = _spec(server, "/ok", concurrency=2, requests=4, warmup=0, expect_text='"allow"')
    missed = run(spec)
    assert missed["statuses"] == {'200 without "allow"': 4}
    assert missed["first_error"] == 'HTTP 200 without "allow": {"result": true}'


def test_paced_runs_send_every_request_asked_for(server: ThreadingHTTPServer) -> None:
    result = run(_spec(server, "/ok", concurrency=4, requests=21, rate=200.0, warmup=0))
    assert result["statuses"] == {"200": 21}


class _FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_pacing_schedule_on_a_fake_clock() -> None:
    # Request i is due at t0 + i / rate; nothing is sent early, nothing due at or after
    # the deadline is sent, and the wait is exactly the time left to the next due request.
    clock = _FakeClock()
    spec = Spec(host="127.0.0.1", port=9, path="/", body=b"", headers={}, rate=100.0)
    state = _Run(spec, clock=clock)
    state.recording, state.t0, state.deadline = True, 100.0, 100.05
    idle = deque(state.conns)
    assert state._due() and state._ticket() == 0  # due at t0
    assert not state._due()  # request 1 is due at t0 + 0.01
    assert state._pace_timeout(idle) == pytest.approx(0.01)
    clock.now = 100.004
    assert not state._due() and state._pace_timeout(idle) == pytest.approx(0.006)
    clock.now = 100.01
    assert state._due() and state._ticket() == 1
    clock.now = 100.2  # late: every request due by now may go at once, up to the deadline
    assert [state._ticket() for _ in range(5)] == [2, 3, 4, None, None]
    assert state._pace_timeout(deque()) is None  # no idle connection: nothing to wait for
    state.close()


def test_a_refused_connection_is_an_error_not_a_crash(server: ThreadingHTTPServer) -> None:
    spec = _spec(server, "/ok", concurrency=2, requests=3, warmup=0)
    server.shutdown()
    server.server_close()
    result = run(spec)
    assert sum(result["statuses"].values()) == 3
    assert set(result["statuses"]) == {"ConnectionRefusedError"}
    assert result["first_error"].startswith("ConnectionRefusedError")


class _CannedServer:
    """A raw TCP server answering every request with ``reply``, byte by byte if ``drip``.

    It closes the connection after an answer that says ``Connection: close`` or is HTTP/1.0.
    """

    def __init__(self, reply: bytes, *, drip: bool = False) -> None:
        self.reply, self.drip = reply, drip
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        closes = b"connection: close" in self.reply.lower() or self.reply.startswith(b"HTTP/1.0")
        with conn:
            data = b""
            while True:
                while b"\r\n\r\n" not in data:
                    more = conn.recv(65536)
                    if not more:
                        return
                    data += more
                head, _, data = data.partition(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                while len(data) < length:
                    data += conn.recv(65536)
                data = data[length:]
                pieces = [bytes([b]) for b in self.reply] if self.drip else [self.reply]
                for piece in pieces:
                    conn.sendall(piece)
                if closes:
                    return

    def spec(self, **kw: Any) -> Spec:
        return Spec(host="127.0.0.1", port=self.port, path="/", body=BODY, headers={}, **kw)

    def close(self) -> None:
        self.listener.close()


def _canned(reply: bytes, *, drip: bool = False, **kw: Any) -> tuple[dict[str, Any], int]:
    server = _CannedServer(reply, drip=drip)
    try:
        return run(server.spec(concurrency=1, requests=3, warmup=0, **kw)), server.connections
    finally:
        server.close()


def test_an_answer_arriving_in_pieces_is_read_whole() -> None:
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX: y\r\n\r\nhello"
    result, connections = _canned(reply, drip=True, expect_text="hello")
    assert result["statuses"] == {"200": 3} and connections == 1


def test_chunked_answers_and_connection_close_are_honoured() -> None:
    reply = b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    reply += b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nTrailer: x\r\n\r\n"
    result, connections = _canned(reply, expect_status=201, expect_text="abcde")
    assert result["statuses"] == {"201": 3} and connections == 3  # reconnected each time
    http10, connections = _canned(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert http10["statuses"] == {"200": 3} and connections == 3


def test_what_is_not_http_is_an_error_not_a_crash() -> None:
    result, _ = _canned(b"SSH-2.0-OpenSSH\r\n\r\n")
    assert result["statuses"] == {"Malformed": 3}
    assert result["first_error"].startswith("Malformed: bad status line")


def test_an_answers_server_timing_is_kept_with_its_latency() -> None:
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
    reply += b"server-timing: opa;dur=1.5, total;dur=4\r\n\r\nok"
    result, _ = _canned(reply, drip=True)
    assert result["server_timing"] == ["opa;dur=1.5, total;dur=4"] * 3
    assert len(result["server_timing"]) == len(result["latencies_ms"])
    plain, _ = _canned(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert "server_timing" not in plain  # bare OPA's rows carry nothing


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"HTTP/1.1 200 OK\r\nServer-Timing: total;dur=1\r\n\r\n{}", "total;dur=1"),
        (b"HTTP/1.1 200 OK\r\nserver-timing:a;dur=2\r\nx: y\r\n\r\n", "a;dur=2"),
        (b"HTTP/1.1 200 OK\r\nx-server-timing: a;dur=2\r\n\r\n", None),  # another header
        (b"HTTP/1.1 200 OK\r\n\r\nserver-timing: in the body", None),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n", None),  # the head's first part only
    ],
)
def test_the_server_timing_header_is_found_in_the_head_only(
    data: bytes, expected: str | None
) -> None:
    assert loadgen.server_timing_of(data) == expected
