"""The load generator: a separate process driving one HTTP endpoint over loopback.

Run as ``python -m benchmarks.loadgen`` with a JSON spec on the first line of stdin::

    {"host": "127.0.0.1", "port": 8080, "path": "/v1/decisions", "body_file": "...",
     "headers": {...}, "concurrency": 16, "requests": 2000, "duration": 10.0,
     "rate": null, "warmup": 2, "expect_status": 200, "expect_text": "\"verdict\":\"allow\""}

``concurrency`` keep-alive connections are driven by one thread over non-blocking sockets
(``select``): the request bytes are built once, and answers are read by the same incremental
parser as the service's OPA clients (``engine.engines.http_wire``). A thread and
``http.client`` per connection cost 0.15-0.2 ms of CPU per request on this machine's 2
cores, shared with the service under test; this costs a fraction of that, and no thread of
the generator waits for another's interpreter lock before it can read its answer.

Without ``rate`` the load is closed-loop: each connection sends its next request as soon as
the previous one answered, until ``requests`` were sent or ``duration`` seconds passed,
whichever comes first. With ``rate`` (requests/s) the requests are paced on a fixed global
schedule (request ``i`` is due at ``t0 + i / rate``, sent on a free connection) and latency
counts from the scheduled time, so a slow answer that delays later requests shows in their
latency too.

Protocol: after the warm-up (``warmup`` requests per connection, not recorded) the
generator prints ``READY``, waits for a line on stdin (the caller snapshots CPU counters
then), runs the measured phase and prints one JSON line of results: raw latencies (ms),
status counts, elapsed wall time and the generator's own CPU seconds during the measured
phase; with each latency, the answer's ``Server-Timing`` value when the target sends one
(releasegate: what its OPA, its log and the whole request took inside it).
"""

from __future__ import annotations

import json
import os
import selectors
import socket
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.engines.http_wire import RECV_BYTES, Malformed, Parser, parse_response

SELECT_LIMIT = 900
"""Connections driven with select(2) (sub-millisecond waits); more use epoll."""


@dataclass
class Spec:
    """What to send, how often and how many."""

    host: str
    port: int
    path: str
    body: bytes
    headers: dict[str, str]
    concurrency: int = 16
    requests: int | None = None
    duration: float | None = None
    rate: float | None = None
    warmup: int = 2
    expect_status: int = 200
    expect_text: str | None = None
    """Text every answer with ``expect_status`` must contain (e.g. ``"verdict":"allow"``):
    a fail-closed ``pause`` is a 200 too, and must not count as a decision made."""
    method: str = "POST"

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Spec:
        """From the stdin spec (the body is read from ``body_file``)."""
        with open(doc.pop("body_file"), "rb") as f:
            body = f.read()
        return cls(body=body, **doc)

    def request_bytes(self) -> bytes:
        """The whole HTTP/1.1 request, built once."""
        headers = {
            "Host": f"{self.host}:{self.port}",
            "Content-Type": "application/json",
            "Content-Length": str(len(self.body)),
            **self.headers,
        }
        head = f"{self.method} {self.path} HTTP/1.1\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        return head.encode("latin-1") + b"\r\n" + self.body


MAX_HEAD_BYTES = 16 * 1024
"""How much of an answer is searched for its head's end (the service's are ~200 bytes)."""


def server_timing_of(data: bytes) -> str | None:
    """The ``Server-Timing`` value in the head at the start of ``data`` (a response's first
    bytes), or None."""
    end = data.find(b"\r\n\r\n")
    head = data if end < 0 else data[:end]
    start = head.lower().find(b"\r\nserver-timing:")
    if start < 0:
        return None
    start += len(b"\r\nserver-timing:")
    stop = head.find(b"\r\n", start)
    return head[start : stop if stop >= 0 else len(head)].strip().decode("latin-1")


@dataclass
class Answer:
    """One response: ``close`` when the connection may not carry another request."""

    status: int
    body: bytes
    close: bool


class _Connection:
    """One keep-alive connection: the request in flight, the answer being read."""

    def __init__(self, spec: Spec, request: bytes) -> None:
        self.spec = spec
        self.request = memoryview(request)
        self.sock: socket.socket | None = None
        self.sent = 0
        self.parser: Parser | None = None
        self.want = RECV_BYTES
        self.began = 0.0
        self.events = 0
        self.timing: str | None = None
        """The answer's ``Server-Timing`` value (releasegate sends one)."""
        self.head: bytes | None = None
        """The answer's first bytes while its head has not ended."""

    def open(self) -> socket.socket:
        sock = socket.create_connection((self.spec.host, self.spec.port), timeout=60)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        self.sock = sock
        self.parser = None
        return sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock = None


class _Run:
    """The event loop over all connections (warm-up, then the measured phase)."""

    def __init__(self, spec: Spec, clock: Callable[[], float] = time.perf_counter) -> None:
        self.spec = spec
        self.clock = clock
        self.request = spec.request_bytes()
        self.expect_text = spec.expect_text.encode() if spec.expect_text is not None else None
        # select(2), not epoll: epoll's timeout is in whole milliseconds, rounded up, and a
        # paced request would leave up to 1 ms late (its latency counts from its due time).
        # select(2) takes descriptors below FD_SETSIZE (1024) only: epoll past that.
        self.selector: selectors.BaseSelector = (
            selectors.SelectSelector()
            if spec.concurrency <= SELECT_LIMIT
            else selectors.DefaultSelector()
        )
        self.conns = [_Connection(spec, self.request) for _ in range(spec.concurrency)]
        self.latencies: list[float] = []
        self.server_timings: list[str | None] = []
        self.statuses: dict[str, int] = {}
        self.first_error: str | None = None
        self.issued = 0
        self.t0 = 0.0
        self.deadline = float("inf")
        self.recording = False

    # -- sending and receiving ---------------------------------------------------------

    def _send(self, conn: _Connection, began: float) -> None:
        if conn.sock is None:
            self.selector.register(conn.open(), selectors.EVENT_READ, conn)
            conn.events = selectors.EVENT_READ
        conn.began = began
        conn.sent = 0
        conn.timing = conn.head = None
        self._write(conn)

    def _write(self, conn: _Connection) -> None:
        assert conn.sock is not None
        try:
            conn.sent += conn.sock.send(conn.request[conn.sent :])
        except BlockingIOError:
            pass
        events = selectors.EVENT_READ
        if conn.sent < len(conn.request):
            events |= selectors.EVENT_WRITE
        if events != conn.events:  # one system call less per request in the usual case
            self.selector.modify(conn.sock, events, conn)
            conn.events = events

    def _read(self, conn: _Connection) -> Answer | None:
        """What arrived, fed to the service's own response parser (``http_wire``)."""
        assert conn.sock is not None
        try:
            data = conn.sock.recv(conn.want)
        except BlockingIOError:
            return None
        if conn.head is not None or conn.parser is None:
            self._keep_head(conn, data)
        try:
            if conn.parser is None:
                if not data:
                    raise ConnectionResetError("the server closed the connection")
                conn.parser = parse_response(data, head_only=False)
                conn.want = next(conn.parser)
            else:
                conn.want = conn.parser.send(data)
        except StopIteration as done:
            status, body, keep = done.value
            conn.parser, conn.want = None, RECV_BYTES
            return Answer(status, body, close=not keep)
        return None

    @staticmethod
    def _keep_head(conn: _Connection, data: bytes) -> None:
        """Collect the answer's head (across reads) until its end; then its Server-Timing."""
        head = (conn.head or b"") + data
        if b"\r\n\r\n" in head or len(head) > MAX_HEAD_BYTES or not data:
            conn.timing, conn.head = server_timing_of(head), None
        else:
            conn.head = head

    def _fail(self, conn: _Connection, exc: Exception) -> None:
        if conn.sock is not None:
            self.selector.unregister(conn.sock)
        conn.close()
        conn.events = 0
        self._record(conn, type(exc).__name__, f"{type(exc).__name__}: {exc}")

    def _answered(self, conn: _Connection, answer: Answer) -> None:
        key, error = str(answer.status), None
        if answer.status != self.spec.expect_status:
            error = f"HTTP {answer.status}: {answer.body[:300].decode(errors='replace')}"
        elif self.expect_text is not None and self.expect_text not in answer.body:
            key = f"{answer.status} without {self.spec.expect_text}"
            error = f"HTTP {key}: {answer.body[:300].decode(errors='replace')}"
        self._record(conn, key, error)
        if answer.close and conn.sock is not None:
            self.selector.unregister(conn.sock)
            conn.close()
            conn.events = 0

    def _record(self, conn: _Connection, key: str, error: str | None) -> None:
        if self.recording:
            self.latencies.append((self.clock() - conn.began) * 1000.0)
            self.server_timings.append(conn.timing)
            self.statuses[key] = self.statuses.get(key, 0) + 1
            if error is not None and self.first_error is None:
                self.first_error = error

    # -- scheduling ----------------------------------------------------------------------

    def _finished(self) -> bool:
        limit = self.spec.requests
        if limit is not None and self.issued >= limit:
            return True
        if self.spec.rate:  # paced: no request is due at or after the deadline
            return self._next_due() >= self.deadline
        return self.clock() >= self.deadline

    def _next_due(self) -> float:
        """When the next paced request is due: ``t0 + issued / rate``."""
        assert self.spec.rate
        return self.t0 + self.issued / self.spec.rate

    def _ticket(self) -> int | None:
        if self._finished():
            return None
        n = self.issued
        self.issued += 1
        return n

    def _paced_work_left(self) -> bool:
        return bool(self.recording and self.spec.rate and not self._finished())

    def _loop(self, next_request: Callable[[_Connection], bool], busy: set[_Connection]) -> None:
        """Run until no connection is busy; ``next_request`` starts one on an idle one."""
        idle: deque[_Connection] = deque()
        for conn in self.conns:
            if not next_request(conn):
                idle.append(conn)
            else:
                busy.add(conn)
        while busy or self._paced_work_left():
            timeout = self._pace_timeout(idle)
            for key, mask in self.selector.select(timeout):
                conn = key.data
                try:
                    if mask & selectors.EVENT_WRITE:
                        self._write(conn)
                    if not mask & selectors.EVENT_READ:
                        continue
                    answer = self._read(conn)
                    if answer is None:
                        continue
                except (OSError, Malformed) as exc:
                    self._fail(conn, exc)
                else:
                    self._answered(conn, answer)
                busy.discard(conn)
                idle.append(conn)
            while idle and self._due():
                conn = idle.popleft()
                if next_request(conn):
                    busy.add(conn)
                else:
                    idle.appendleft(conn)
                    break

    def _pace_timeout(self, idle: deque[_Connection]) -> float | None:
        if not (self.spec.rate and idle and self.recording):
            return None
        return max(0.0, self._next_due() - self.clock())

    def _due(self) -> bool:
        if not (self.spec.rate and self.recording):
            return True
        return self.clock() >= self._next_due()

    def warm_up(self) -> None:
        """``warmup`` unrecorded requests per connection."""
        left = dict.fromkeys(self.conns, self.spec.warmup)

        def next_request(conn: _Connection) -> bool:
            if left[conn] <= 0:
                return False
            left[conn] -= 1
            self._send(conn, self.clock())
            return True

        self._loop(next_request, set())

    def measure(self) -> None:
        """The measured phase."""
        self.recording = True

        def next_request(conn: _Connection) -> bool:
            while self._due():
                n = self._ticket()
                if n is None:
                    return False
                began = self.t0 + n / self.spec.rate if self.spec.rate else self.clock()
                try:
                    self._send(conn, began)
                except OSError as exc:  # refused: counted, and the next request is tried
                    self._fail(conn, exc)
                    continue
                return True
            return False

        self._loop(next_request, set())

    def close(self) -> None:
        for conn in self.conns:
            conn.close()
        self.selector.close()


def run(spec: Spec, go: Callable[[], None] | None = None) -> dict[str, Any]:
    """Warm up, signal READY, wait for ``go()``, run the measured phase; the results."""
    state = _Run(spec)
    try:
        state.warm_up()
        if go is not None:
            go()
        cpu0 = os.times()
        state.t0 = state.clock()
        if spec.duration is not None:
            state.deadline = state.t0 + spec.duration
        state.measure()
        elapsed = state.clock() - state.t0
        cpu1 = os.times()
    finally:
        state.close()
    return {
        "latencies_ms": state.latencies,
        "statuses": state.statuses,
        "elapsed_s": elapsed,
        "cpu_s": (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system),
        "first_error": state.first_error,
        **(
            {"server_timing": state.server_timings}
            if any(t is not None for t in state.server_timings)
            else {}
        ),
    }


def _go_from_stdin() -> None:
    print("READY", flush=True)
    sys.stdin.readline()


def main() -> int:
    """Read the spec from stdin, run, print the results as one JSON line."""
    spec = Spec.from_json(json.loads(sys.stdin.readline()))
    result = run(spec, go=_go_from_stdin)
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
