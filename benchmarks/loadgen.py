"""The load generator: a separate process driving one HTTP endpoint over loopback.

Run as ``python -m benchmarks.loadgen`` with a JSON spec on the first line of stdin::

    {"host": "127.0.0.1", "port": 8080, "path": "/v1/decisions", "body_file": "...",
     "headers": {...}, "concurrency": 16, "requests": 2000, "duration": 10.0,
     "rate": null, "warmup": 2, "expect_status": 200}

Each worker thread owns one keep-alive ``http.client`` connection. Without ``rate`` the load
is closed-loop: every worker sends its next request as soon as the previous one answered,
until ``requests`` were sent or ``duration`` seconds passed, whichever comes first. With
``rate`` (requests/s) the requests are paced on a fixed global schedule (request ``i`` is due
at ``t0 + i / rate``) and latency counts from the scheduled time, so a slow answer that
delays later requests shows in their latency too.

Protocol: after the warm-up (``warmup`` requests per worker, not recorded) the generator
prints ``READY``, waits for a line on stdin (the caller snapshots CPU counters then), runs
the measured phase and prints one JSON line of results: raw latencies (ms), status counts,
elapsed wall time and the generator's own CPU seconds during the measured phase.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any


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
    method: str = "POST"

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Spec:
        """From the stdin spec (the body is read from ``body_file``)."""
        with open(doc.pop("body_file"), "rb") as f:
            body = f.read()
        return cls(body=body, **doc)


@dataclass
class _Shared:
    spec: Spec
    lock: threading.Lock = field(default_factory=threading.Lock)
    issued: int = 0
    deadline: float = float("inf")
    t0: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    first_error: str | None = None

    def ticket(self) -> int | None:
        """The next request number, or None when the run is over."""
        with self.lock:
            limit = self.spec.requests
            if (limit is not None and self.issued >= limit) or time.perf_counter() >= self.deadline:
                return None
            n = self.issued
            self.issued += 1
            return n


class _Client:
    """One keep-alive connection; reconnects after an error."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.conn: http.client.HTTPConnection | None = None
        self.headers = {
            "Content-Type": "application/json",
            "Content-Length": str(len(spec.body)),
            **spec.headers,
        }

    def send(self) -> tuple[int, bytes]:
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.spec.host, self.spec.port, timeout=60)
        try:
            self.conn.request(self.spec.method, self.spec.path, self.spec.body, self.headers)
            resp = self.conn.getresponse()
            data = resp.read()
            if resp.will_close:
                self.conn.close()
                self.conn = None
            return resp.status, data
        except (OSError, http.client.HTTPException):
            if self.conn is not None:
                self.conn.close()
            self.conn = None
            raise


def _worker(shared: _Shared, start: threading.Barrier) -> None:
    spec = shared.spec
    client = _Client(spec)
    for _ in range(spec.warmup):
        client.send()
    start.wait()  # everybody warm; the main thread prints READY and waits for GO
    start.wait()  # GO
    mine: list[float] = []
    statuses: dict[str, int] = {}
    error: str | None = None
    while True:
        n = shared.ticket()
        if n is None:
            break
        if spec.rate:
            due = shared.t0 + n / spec.rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            began = due
        else:
            began = time.perf_counter()
        try:
            status, data = client.send()
            key = str(status)
            if status != spec.expect_status and error is None:
                error = f"HTTP {status}: {data[:300].decode(errors='replace')}"
        except (OSError, http.client.HTTPException) as exc:
            key = type(exc).__name__
            error = error or f"{key}: {exc}"
        mine.append((time.perf_counter() - began) * 1000.0)
        statuses[key] = statuses.get(key, 0) + 1
    with shared.lock:
        shared.latencies.extend(mine)
        for key, count in statuses.items():
            shared.statuses[key] = shared.statuses.get(key, 0) + count
        if shared.first_error is None:
            shared.first_error = error


def run(spec: Spec, go: Any = None) -> dict[str, Any]:
    """Warm up, signal READY, wait for ``go()``, run the measured phase; the results."""
    shared = _Shared(spec)
    barrier = threading.Barrier(spec.concurrency + 1)
    threads = [
        threading.Thread(target=_worker, args=(shared, barrier), daemon=True)
        for _ in range(spec.concurrency)
    ]
    for th in threads:
        th.start()
    barrier.wait()
    if go is not None:
        go()
    cpu0 = os.times()
    shared.t0 = time.perf_counter()
    if spec.duration is not None:
        shared.deadline = shared.t0 + spec.duration
    barrier.wait()
    for th in threads:
        th.join()
    elapsed = time.perf_counter() - shared.t0
    cpu1 = os.times()
    return {
        "latencies_ms": shared.latencies,
        "statuses": shared.statuses,
        "elapsed_s": elapsed,
        "cpu_s": (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system),
        "first_error": shared.first_error,
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
