"""Where the CPU of one decision goes: each stage of the pipeline, alone, in process.

Run as ``python -m benchmarks.stages --json FILE`` (the ``stages`` scenario does). It opens
the service's real state (managed OPA on the committed signed bundle, SQLite log, token and
approval stores) in a scratch directory, warms it up with the benchmark request, then times
each stage ``--iterations`` times on one thread with no other load, and prints the median
CPU per call:

* ``thread_time`` for stages that run on the calling thread;
* ``process_time`` for the durable append (the log's writer thread seals and commits while
  the caller waits, so the process's CPU is the stage's CPU) and for the whole pipeline;
* the managed OPA's own CPU (``/proc``) for the evaluation, next to the client side.

The sum of the stages is what one decision costs before the HTTP layer, whose share shows in
the ``core`` scenario's ``GET /healthz`` row.

Two more figures take the service's own path, on an event loop (uvloop) with 16 requests in
flight as scenario 1's clients keep them, in batches, the median process CPU per request
(every thread of this process: the loop and the log's commit thread; not OPA's):

* ``pipeline_loop``: ``decide_async``, as the service decides (OPA over asyncio, the log's
  group commit on the loop);
* ``app``: the whole app over ASGI with no sockets (authentication, body, validation,
  middleware, access and decision log lines, the pipeline, the response), built by
  ``create_app`` on a state of its own.

Scenario 1's CPU per decision of the service, without its OPA, minus ``app`` is what uvicorn,
the sockets and the wake-ups between requests cost. Nothing here is asserted: these are
figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

STAGES = [
    ("parse", "read the request body (msgspec outline; bundle and report kept as text)"),
    ("validate", "validate the request (pydantic)"),
    ("facts", "facts: provenance (cache hit), scans (memo), approvals query, SLO"),
    ("input_document", "input document: model_dump + RFC 8785 (sections cached) + SHA-256"),
    ("opa_client", "OPA evaluation, releasegate side (HTTP on the unix socket)"),
    ("opa_process", "OPA evaluation, OPA process"),
    ("record", "record: draft + RFC 8785 of its members"),
    ("append", "durable append: seal (RFC 8785, SHA-256, Ed25519) + SQLite commit (fsync)"),
    ("pipeline", "whole pipeline.decide (facts .. append), for comparison"),
    ("pipeline_loop", "pipeline on the event loop (decide_async), 16 at a time, process CPU"),
    ("app", "the whole app over ASGI, no sockets (auth .. response), 16 at a time"),
]

IN_FLIGHT = 16
"""Requests in flight on the loop, as scenario 1's closed-loop clients keep them."""


def _opa_cpu_s(pid: int) -> float:
    from benchmarks.procs import cpu_seconds

    return cpu_seconds([pid])


def _median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000.0, 3)


def _timed(fn: Callable[[], Any], iterations: int, clock: Callable[[], float]) -> float:
    samples = []
    for _ in range(iterations):
        t0 = clock()
        fn()
        samples.append(clock() - t0)
    return _median_ms(samples)


def measure(body: bytes, iterations: int) -> dict[str, float]:
    """Median CPU milliseconds per stage."""
    from engine.api.app import close_state, open_state
    from engine.api.lazy_body import outline_document
    from engine.api.metrics import ServiceMetrics
    from engine.config import Settings
    from engine.decision import digest_of_canonical, new_decision_id
    from engine.log.canonical import CanonicalCache
    from engine.log.record import RequestMeta, canonical_members, draft_body
    from engine.models.common import quantize_ns
    from engine.models.request import DecisionRequestV1

    with tempfile.TemporaryDirectory(prefix="releasegate-stages-") as tmp:
        state = open_state(Settings(state_dir=Path(tmp), bundle_poll_s=0), ServiceMetrics())
        try:
            pipeline, log = state.pipeline, state.decision_log
            opa_pid = getattr(state.engine, "pid", None)
            # As the service reads a body (engine.api.lazy_body): evidence kept as text.
            outline = outline_document(body)
            assert outline is not None, "the benchmark request is off the lazy reader's path"
            request = DecisionRequestV1.model_validate(outline)
            for _ in range(20):  # warm: verification cache, scan memo, OPA, SQLite pages
                pipeline.decide(request, caller="bench-ci", adapter="api")
            now_ns = quantize_ns(time.time_ns())
            document = pipeline.build_input(request, now_ns=now_ns, caller="bench-ci")
            doc = pipeline.encode_input(document)  # as OPA is sent it: with its RFC 8785 bytes
            canonical = doc.canonical
            members = CanonicalCache()  # the log's cache of record members that repeat
            decision = pipeline.decide(request, caller="bench-ci", adapter="api")
            meta = RequestMeta(caller="bench-ci", adapter="api", dry_run=False)
            thread, process = time.thread_time, time.process_time
            fresh = iter(
                [
                    DecisionRequestV1.model_validate(outline_document(body))
                    for _ in range(iterations)
                ]
            )
            out = {
                "parse": _timed(lambda: outline_document(body), iterations, thread),
                "validate": _timed(
                    lambda: DecisionRequestV1.model_validate(outline), iterations, thread
                ),
                # Each call a request read afresh, as each of the service's is: its raw
                # documents' digests are computed in this stage, not remembered.
                "facts": _timed(
                    lambda: pipeline.build_input(next(fresh), now_ns=now_ns, caller="bench-ci"),
                    iterations,
                    thread,
                ),
                "input_document": _timed(
                    lambda: digest_of_canonical(pipeline.encode_input(document).canonical),
                    iterations,
                    thread,
                ),
            }
            opa_before = _opa_cpu_s(opa_pid) if opa_pid else None
            out["opa_client"] = _timed(lambda: pipeline.engine.evaluate(doc), iterations, thread)
            if opa_before is not None and opa_pid:
                out["opa_process"] = round(
                    (_opa_cpu_s(opa_pid) - opa_before) / iterations * 1000.0, 3
                )
            out["record"] = _timed(
                lambda: canonical_members(
                    draft_body(
                        decision,
                        input_document=doc,
                        request=meta,
                        erased=[],
                        masked=[],
                        copy_input=False,
                    ),
                    known={"input": canonical},
                    cache=members,
                ),
                iterations,
                thread,
            )
            out["append"] = round(
                _timed(
                    lambda: log.append(
                        decision.model_copy(update={"decision_id": new_decision_id()}),
                        input_document=doc,
                        caller="bench-ci",
                        adapter="api",
                        input_canonical=canonical,
                    ),
                    iterations,
                    process,
                )
                - out["record"],
                3,
            )
            out["pipeline"] = _timed(
                lambda: pipeline.decide(request, caller="bench-ci", adapter="api"),
                iterations,
                process,
            )
        finally:
            close_state(state.closers)
    out.update(_on_the_loop(body, iterations))
    return out


def _on_the_loop(body: bytes, iterations: int) -> dict[str, float]:
    """``pipeline_loop`` and ``app``: the service's own path, on uvloop, in process."""
    import logging

    import uvloop

    from engine.api import create_app
    from engine.api.logs import JsonLogFormatter
    from engine.auth.sql import database_url
    from engine.auth.tokens import TokenStore
    from engine.config import Settings

    with tempfile.TemporaryDirectory(prefix="releasegate-stages-app-") as tmp:
        settings = Settings(state_dir=Path(tmp), bundle_poll_s=0)
        tokens = TokenStore(database_url(settings.state_dir, None))
        try:
            token, _ = tokens.create("bench-ci", ["ci"])
        finally:
            tokens.close()
        # The service writes an access line and a decision line per request (serve's default).
        handler = logging.FileHandler(Path(tmp) / "service.log")
        handler.setFormatter(JsonLogFormatter())
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.INFO)
        root.addHandler(handler)
        try:
            return uvloop.run(_drive(create_app(settings), body, token, iterations))
        finally:
            root.removeHandler(handler)
            root.setLevel(level)
            handler.close()


async def _drive(app: Any, body: bytes, token: str, iterations: int) -> dict[str, float]:
    import asyncio

    from engine.api.lazy_body import outline_document
    from engine.models.request import DecisionRequestV1

    async with running(app):
        pipeline = app.state.releasegate.pipeline
        headers = [
            (b"host", b"stages"),
            (b"authorization", f"Bearer {token}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]

        async def post() -> None:
            status = await _asgi_post(app, "/v1/decisions", headers, body)
            if status != 200:
                raise RuntimeError(f"POST /v1/decisions answered {status}")

        def read() -> DecisionRequestV1:
            # As the service reads a body: evidence kept as text, its digests not yet made.
            return DecisionRequestV1.model_validate(outline_document(body))

        async def decide(request: DecisionRequestV1) -> None:
            await pipeline.decide_async(request, caller="bench-ci", adapter="api")

        batches = max(1, iterations // IN_FLIGHT)
        samples: dict[str, list[float]] = {"pipeline_loop": [], "app": []}
        for _ in range(4):  # warm both paths
            await asyncio.gather(*(post() for _ in range(IN_FLIGHT)))
        for _ in range(batches):  # interleaved, so both see the same host minutes
            requests = [read() for _ in range(IN_FLIGHT)]  # read before the clock starts
            t0 = time.process_time()
            await asyncio.gather(*(decide(request) for request in requests))
            samples["pipeline_loop"].append((time.process_time() - t0) / IN_FLIGHT)
            t0 = time.process_time()
            await asyncio.gather(*(post() for _ in range(IN_FLIGHT)))
            samples["app"].append((time.process_time() - t0) / IN_FLIGHT)
        return {key: _median_ms(values) for key, values in samples.items()}


@contextlib.asynccontextmanager
async def running(app: Any) -> AsyncIterator[None]:
    """The ASGI app between its lifespan's startup and shutdown, as uvicorn runs it."""
    import asyncio

    startup: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await startup.put({"type": "lifespan.startup"})
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    lifespan = asyncio.create_task(app(scope, startup.get, events.put))
    started = await events.get()
    if started["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"the app did not start: {started}")
    try:
        yield
    finally:
        await startup.put({"type": "lifespan.shutdown"})
        await lifespan


async def _asgi_post(app: Any, path: str, headers: list[tuple[bytes, bytes]], body: bytes) -> int:
    """One request through the ASGI app, as uvicorn hands it over; the response status."""
    import asyncio

    sent: list[dict[str, Any]] = []
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # no disconnect while the response is written
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8080),
        "state": {},
    }
    await app(scope, receive, send)
    return int(sent[0]["status"])


def main(argv: list[str] | None = None) -> int:
    """Measure, print the table, write the JSON."""
    from benchmarks.scenarios import request_body

    parser = argparse.ArgumentParser(prog="python -m benchmarks.stages", description=__doc__)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args(argv)
    body = request_body()
    figures = measure(body, args.iterations)
    args.json.write_text(json.dumps({"iterations": args.iterations, "ms": figures}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
