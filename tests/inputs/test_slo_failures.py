"""SloProvider when Prometheus is down, slow, erroring or malformed: ``unavailable``, never raise.

The misbehaving servers are small local HTTP servers (a real socket, real HTTP); the
deadline test steps an injected clock instead of sleeping.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from engine.errors import InputError
from engine.inputs.slo import SloConfig, SloProvider
from engine.models.common import SectionStatus
from engine.models.inputs import ReleaseFacts
from tests.inputs.prometheus_fixture import free_port

NOW = datetime(2026, 10, 1, tzinfo=UTC)

Behaviour = Callable[[BaseHTTPRequestHandler, threading.Event], None]


@dataclass
class StubServer:
    """A loopback HTTP server answering every request with one behaviour."""

    url: str
    requests: list[str] = field(default_factory=list)


@pytest.fixture
def serve() -> Iterator[Callable[[Behaviour], StubServer]]:
    release = threading.Event()
    servers: list[ThreadingHTTPServer] = []

    def start(behaviour: Behaviour) -> StubServer:
        stub = StubServer(url="")

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server API
                stub.requests.append(self.path)
                behaviour(self, release)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        servers.append(server)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        stub.url = f"http://127.0.0.1:{server.server_address[1]}"
        return stub

    yield start
    release.set()
    for server in servers:
        server.shutdown()
        server.server_close()


def reply(status: int, body: bytes) -> Behaviour:
    def behaviour(handler: BaseHTTPRequestHandler, _: threading.Event) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return behaviour


def hang(handler: BaseHTTPRequestHandler, release: threading.Event) -> None:
    """Answer only when the test ends (far past any query timeout)."""
    release.wait(timeout=30)
    try:
        reply(200, b'{"status":"success","data":{"resultType":"vector","result":[]}}')(
            handler, release
        )
    except OSError:
        pass  # the client gave up long ago


def config(url: str, **prometheus: Any) -> SloConfig:
    return SloConfig.from_dict(
        {
            "prometheus": {"url": url, **prometheus},
            "services": {
                "payments": {
                    "sli": {
                        "error_ratio": 'sum(rate(errors{job="payments"}[{window}])) '
                        '/ sum(rate(requests{job="payments"}[{window}]))'
                    },
                    "objective": 0.999,
                    "query_timeout_s": 0.3,
                }
            },
        }
    )


REL = ReleaseFacts.model_validate(
    {"id": "payments-1.4.2", "service": "payments", "environment": "prod", "stage": "canary"}
)


def test_prometheus_down_is_unavailable() -> None:
    port = free_port()  # bound and released: nothing listens there
    with SloProvider(config(f"http://127.0.0.1:{port}")) as provider:
        section = provider.collect(REL, now=NOW)
    assert section.status is SectionStatus.UNAVAILABLE
    assert section.message is not None and "unreachable" in section.message
    assert section.source == f"http://127.0.0.1:{port}"
    assert (section.objective, section.window) == (0.999, "30d")
    assert section.budget_remaining is None and section.burn_rates == [] and section.canary is None


def test_slow_prometheus_is_unavailable(serve: Callable[[Behaviour], StubServer]) -> None:
    stub = serve(hang)
    with SloProvider(config(stub.url)) as provider:
        section = provider.collect(REL, now=NOW)
    assert section.status is SectionStatus.UNAVAILABLE
    assert section.message is not None and "did not answer within 0.3s" in section.message
    assert len(stub.requests) == 1  # the first failure ends the collection


def test_server_error_is_unavailable(serve: Callable[[Behaviour], StubServer]) -> None:
    stub = serve(reply(500, b'{"status":"error","error":"boom"}'))
    with SloProvider(config(stub.url)) as provider:
        section = provider.collect(REL, now=NOW)
    assert section.status is SectionStatus.UNAVAILABLE
    assert section.message is not None and "HTTP Status Code 500" in section.message


def test_retries_are_bounded(serve: Callable[[Behaviour], StubServer]) -> None:
    stub = serve(reply(503, b'{"status":"error","error":"overloaded"}'))
    with SloProvider(config(stub.url, retries=1)) as provider:
        section = provider.collect(REL, now=NOW)
    assert section.status is SectionStatus.UNAVAILABLE
    assert section.message is not None and "503" in section.message
    assert len(stub.requests) == 2


def test_malformed_answer_is_unavailable(serve: Callable[[Behaviour], StubServer]) -> None:
    stub = serve(reply(200, b"<html>not prometheus</html>"))
    with SloProvider(config(stub.url)) as provider:
        section = provider.collect(REL, now=NOW)
    assert section.status is SectionStatus.UNAVAILABLE
    assert section.message is not None and "malformed" in section.message


def test_non_numeric_sample_is_invalid(serve: Callable[[Behaviour], StubServer]) -> None:
    body = b'{"status":"success","data":{"resultType":"string","result":[1790812800,"abc"]}}'
    stub = serve(reply(200, body))
    with SloProvider(config(stub.url)) as provider:
        section = provider.collect(REL, now=NOW)
    assert section.status is SectionStatus.INVALID
    assert section.message is not None and "'abc' is not a number" in section.message


def test_query_carries_time_and_server_timeout(serve: Callable[[Behaviour], StubServer]) -> None:
    stub = serve(reply(200, b'{"status":"success","data":{"resultType":"vector","result":[]}}'))
    with SloProvider(config(stub.url)) as provider:
        section = provider.collect(REL, now=NOW)
    assert section.status is SectionStatus.OK
    assert len(stub.requests) == 1 + 2 * 4  # budget, then long and short of four pairs
    assert all("time=1790812800.000" in r and "timeout=300ms" in r for r in stub.requests)


def test_deadline_bounds_the_whole_collection(serve: Callable[[Behaviour], StubServer]) -> None:
    stub = serve(reply(200, b'{"status":"success","data":{"resultType":"vector","result":[]}}'))
    ticks = iter(range(0, 1000, 4))  # every clock read is 4 s later
    with SloProvider(config(stub.url, deadline_s=10), clock=lambda: next(ticks)) as provider:
        section = provider.collect(REL, now=NOW)
    assert section.status is SectionStatus.UNAVAILABLE
    assert section.message is not None and "deadline" in section.message
    assert len(stub.requests) == 2  # read at 4 s and 8 s; at 12 s the 10 s deadline has passed


def test_failures_are_not_cached(serve: Callable[[Behaviour], StubServer]) -> None:
    stub = serve(reply(500, b"{}"))
    with SloProvider(config(stub.url), clock=lambda: 0.0) as provider:
        provider.collect(REL, now=NOW)
        provider.collect(REL, now=NOW)
    assert len(stub.requests) == 2


def test_naive_decision_time_is_refused() -> None:
    with SloProvider(config("http://127.0.0.1:9")) as provider, pytest.raises(InputError):
        provider.collect(REL, now=datetime(2026, 10, 1))  # noqa: DTZ001 - the point of the test
