"""One write per response (``engine.api.coalesce``): uvicorn's real httptools protocol over a
recording transport, and the transport wrapper on its own."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from engine.api.coalesce import CoalescingHttpToolsProtocol, CoalescingTransport


class RecordingTransport(asyncio.Transport):
    """A transport that records what is written to it (no socket)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False
        self.eof = False
        self.reading = True

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def write_eof(self) -> None:
        self.eof = True

    def get_write_buffer_size(self) -> int:
        return 7

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8080)}.get(
            name, default
        )


async def _app(scope: Any, receive: Callable[[], Awaitable[Any]], send: Any) -> None:
    if scope["type"] != "http":
        return
    await receive()
    body = b'{"verdict":"allow"}'
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"19")],
        }
    )
    await send({"type": "http.response.body", "body": body})


REQUEST = b"POST /v1/decisions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"


async def _serve(
    protocol_class: type[HttpToolsProtocol],
    requests: bytes,
    app: Any = _app,
    transport: RecordingTransport | None = None,
) -> RecordingTransport:
    config = Config(app=app, lifespan="off", server_header=False, date_header=False)
    config.load()
    protocol = protocol_class(config=config, server_state=ServerState(), app_state={})
    transport = RecordingTransport() if transport is None else transport
    protocol.connection_made(transport)
    protocol.data_received(requests)
    for _ in range(20):  # the app's task, then the turn's write
        await asyncio.sleep(0)
    return transport


def test_uvicorn_writes_head_and_body_apart_without_it() -> None:
    transport = asyncio.run(_serve(HttpToolsProtocol, REQUEST))
    assert len(transport.writes) == 2  # what this module is for
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")


def test_a_response_leaves_in_one_write() -> None:
    transport = asyncio.run(_serve(CoalescingHttpToolsProtocol, REQUEST))
    (written,) = transport.writes
    assert written.startswith(b"HTTP/1.1 200 OK\r\n")
    assert written.endswith(b'\r\n\r\n{"verdict":"allow"}')
    assert not transport.closed  # keep-alive


def test_a_response_leaves_before_the_work_that_follows_it() -> None:
    # The answer's last byte leaves when the response completes, not at the end of the turn:
    # whatever the app does after its last send (the access line) is not in its latency.
    transport = RecordingTransport()
    written_by_then: list[int] = []

    async def app_with_work_after(scope: Any, receive: Any, send: Any) -> None:
        await _app(scope, receive, send)
        written_by_then.append(len(transport.writes))  # same turn, no await since the send

    asyncio.run(_serve(CoalescingHttpToolsProtocol, REQUEST, app_with_work_after, transport))
    assert written_by_then == [1]
    (written,) = transport.writes  # still head and body in one write
    assert written.endswith(b'\r\n\r\n{"verdict":"allow"}')


def test_pipelined_responses_keep_their_order() -> None:
    transport = asyncio.run(_serve(CoalescingHttpToolsProtocol, REQUEST * 3))
    data = b"".join(transport.writes)
    assert data.count(b"HTTP/1.1 200 OK") == 3
    assert data.endswith(b'{"verdict":"allow"}')


def test_a_connection_close_response_is_written_before_the_close() -> None:
    request = REQUEST.replace(b"Host: x\r\n", b"Host: x\r\nConnection: close\r\n")
    transport = asyncio.run(_serve(CoalescingHttpToolsProtocol, request))
    assert transport.closed
    assert b"".join(transport.writes).endswith(b'{"verdict":"allow"}')


# -- the wrapper alone --------------------------------------------------------------------


@pytest.fixture
def wrapped() -> Any:
    loop = asyncio.new_event_loop()
    inner = RecordingTransport()
    yield loop, inner, CoalescingTransport(inner, loop)
    loop.close()


def _one_turn(loop: asyncio.AbstractEventLoop) -> None:
    loop.run_until_complete(asyncio.sleep(0))


def test_a_turns_writes_leave_together_at_its_end(wrapped: Any) -> None:
    loop, inner, transport = wrapped
    transport.write(b"head ")
    transport.writelines([b"body", bytearray(b"!"), b""])
    assert inner.writes == []
    assert transport.get_write_buffer_size() == 7 + 10
    _one_turn(loop)
    assert inner.writes == [b"head body!"]
    transport.write(b"next")
    _one_turn(loop)
    assert inner.writes == [b"head body!", b"next"]


def test_close_and_write_eof_write_what_is_kept_first(wrapped: Any) -> None:
    loop, inner, transport = wrapped
    transport.write(b"last")
    transport.write_eof()
    assert inner.writes == [b"last"] and inner.eof
    transport.write(b"bye")
    transport.close()
    assert inner.writes == [b"last", b"bye"] and inner.closed
    _one_turn(loop)  # the scheduled write finds nothing left
    assert inner.writes == [b"last", b"bye"]


def test_abort_drops_what_is_kept(wrapped: Any) -> None:
    loop, inner, transport = wrapped
    transport.write(b"never")
    transport.abort()
    _one_turn(loop)
    assert inner.writes == [] and inner.aborted


def test_nothing_is_written_to_a_closing_transport(wrapped: Any) -> None:
    loop, inner, transport = wrapped
    transport.write(b"late")
    inner.closed = True  # the peer went away during the turn
    _one_turn(loop)
    assert inner.writes == []


def test_other_calls_reach_the_transport(wrapped: Any) -> None:
    _, inner, transport = wrapped
    transport.pause_reading()
    assert inner.reading is False
    transport.resume_reading()
    assert inner.reading is True
    assert transport.get_extra_info("peername") == ("127.0.0.1", 50000)
    assert transport.is_closing() is False
