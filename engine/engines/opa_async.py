"""OPA's Data API from the event loop: non-blocking sockets, keep-alive, no thread.

The service decides on its event loop (``DecisionPipeline.decide_async``): a decision that
waits for OPA in a worker thread hands the interpreter lock back and forth between that
thread and the loop, and at 16 clients that cost more CPU than the wait itself
(docs/benchmarks.md). This client waits on the loop instead. It reads answers with the
blocking client's parser (:func:`engine.engines.http_wire.parse_response`, which does no
I/O) and maps failures the same way as :class:`engine.engines.opa_http.OpaClient`: every
call is bounded by ``timeout``, a stale keep-alive connection is retried once on a fresh one,
a malformed answer is refused, and any failure raises an :class:`engine.errors.PolicyError`.

The connections are plain non-blocking sockets, so they belong to no loop: any loop may use
an idle one, and ``close`` works from any thread. A request is written with one ``send``
(the loop's ``sock_sendall`` takes what the socket's buffer did not), and the answer is read
by a reader callback registered for the wait (``add_reader``, ``remove_reader``): one
``recv`` per readiness. The wait is bounded by a timer on the answer rather than
``asyncio.timeout``; together 11-15 µs less CPU per request than the loop's ``sock_recv``
under ``asyncio.timeout`` (docs/benchmarks.md, round 11). Either way uvloop registers the
socket with epoll for each wait (six ``epoll_ctl`` per request, three of them refused).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from engine.engines.http_wire import RECV_BYTES, Malformed, Parser, parse_response
from engine.engines.opa_http import decision_result, input_body
from engine.errors import EngineUnavailable
from engine.models.decision import PolicyResult

POOL_SIZE = 64
"""Idle connections kept (OPA serves each on its own goroutine)."""


class _StaleConnection(Exception):
    """A reused keep-alive connection was closed by OPA before it answered."""


class _Deadline(Exception):
    """The request's deadline passed (``timeout`` after it began)."""


class _NoAnswer(Exception):
    """Sending failed, or the connection failed or closed before the answer's first byte."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


async def _send(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, message: bytes, deadline: float
) -> None:
    """``message`` on the socket: written at once when the socket's buffer takes it (an
    input document of a few kilobytes always does), else the rest by the loop."""
    try:
        try:
            sent = sock.send(message)
        except (BlockingIOError, InterruptedError):
            sent = 0
        if sent < len(message):
            try:
                async with asyncio.timeout_at(deadline):
                    await loop.sock_sendall(sock, memoryview(message)[sent:])
            except TimeoutError as exc:
                raise _Deadline from exc
    except OSError as exc:
        raise _NoAnswer(exc) from exc


Response = tuple[int, bytes, bool]


async def _receive(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, deadline: float
) -> Response:
    """The response, read by a reader callback on the loop: the socket is watched only while
    an answer is awaited (so it belongs to no loop while idle), and each readiness is one
    ``recv`` of what the parser asks for. At ``deadline`` (the loop's clock) the wait ends
    with :class:`_Deadline`: a timer on the answer, cheaper than ``asyncio.timeout``, which
    cost about as much CPU as the rest of the exchange."""
    answer: asyncio.Future[Response] = loop.create_future()
    parser: Parser | None = None
    want = RECV_BYTES

    def readable() -> None:
        nonlocal parser, want
        if answer.done():
            return
        try:
            chunk = sock.recv(want)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            answer.set_exception(_NoAnswer(exc) if parser is None else exc)
            return
        try:
            if parser is None:
                if not chunk:
                    closed = ConnectionResetError("the connection closed without a response")
                    answer.set_exception(_NoAnswer(closed))
                    return
                parser = parse_response(chunk, head_only=False)
                want = next(parser)
            else:
                want = parser.send(chunk)
        except StopIteration as done:
            answer.set_result(done.value)
        except Exception as exc:  # noqa: BLE001 - Malformed and anything else: to the awaiter
            answer.set_exception(exc)

    def expire() -> None:
        if not answer.done():
            answer.set_exception(_Deadline())

    fd = sock.fileno()
    loop.add_reader(fd, readable)
    timer = loop.call_at(deadline, expire)
    try:
        return await answer
    finally:
        timer.cancel()
        loop.remove_reader(fd)


class AsyncOpaClient:
    """Posts input documents to ``/v1/data/<path>`` from an event loop."""

    def __init__(self, address: str, *, timeout: float) -> None:
        self.address = address
        self.timeout = timeout
        parts = urlsplit(address)
        self._family: int
        self._target: str | tuple[str, int]
        if parts.scheme == "unix":
            self._family, self._target = socket.AF_UNIX, parts.path
            self._host_header = "localhost"
        elif parts.scheme == "http":
            host, port = parts.hostname or "127.0.0.1", parts.port or 8181
            self._family, self._target = socket.AF_INET, (host, port)
            self._host_header = f"{host}:{port}"
        else:
            raise EngineUnavailable(f"unsupported OPA address {address!r} (use http:// or unix://)")
        self._idle: list[socket.socket] = []
        self._closed = False

    async def evaluate(self, path: str, input_document: Mapping[str, Any]) -> PolicyResult:
        """Evaluate ``data.<path>`` and validate it as the decision result."""
        status, raw = await self.request("POST", f"/v1/data/{path}", input_body(input_document))
        return decision_result(path, status, raw)

    async def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        """One request, bounded by ``timeout``; one retry when a reused connection was stale."""
        if self._closed:
            raise EngineUnavailable(f"the OPA client for {self.address} is closed")
        head = f"{method} {path} HTTP/1.1\r\nHost: {self._host_header}\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        message = (head + "\r\n").encode("latin-1") + (body or b"")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        try:
            conn = self._idle.pop() if self._idle else None
            if conn is not None:
                try:
                    return await self._exchange(loop, conn, message, deadline, reused=True)
                except _StaleConnection:
                    pass
            async with asyncio.timeout_at(deadline):
                conn = await self._connect(loop)
            return await self._exchange(loop, conn, message, deadline, reused=False)
        except (TimeoutError, _Deadline) as exc:
            raise EngineUnavailable(f"OPA did not answer within {self.timeout}s") from exc

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> socket.socket:
        sock = socket.socket(self._family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, self._target)
        except OSError as exc:
            sock.close()
            raise EngineUnavailable(f"OPA is unreachable at {self.address}: {exc}") from exc
        except BaseException:
            sock.close()
            raise
        return sock

    async def _exchange(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        message: bytes,
        deadline: float,
        *,
        reused: bool,
    ) -> tuple[int, bytes]:
        keep = False
        try:
            try:
                await _send(loop, sock, message, deadline)
                status, body, keep = await _receive(loop, sock, deadline)
            except _NoAnswer as exc:  # reset, broken pipe, closed by OPA while idle
                error = exc.error
                if reused and not isinstance(error, FileNotFoundError | ConnectionRefusedError):
                    raise _StaleConnection from error
                raise EngineUnavailable(f"OPA is unreachable at {self.address}: {error}") from error
            return status, body
        except Malformed as exc:
            detail = f"OPA at {self.address} sent a malformed response: {exc}"
            raise EngineUnavailable(detail) from exc
        except OSError as exc:
            raise EngineUnavailable(f"OPA is unreachable at {self.address}: {exc}") from exc
        finally:
            if keep and not self._closed and len(self._idle) < POOL_SIZE:
                self._idle.append(sock)
            else:
                sock.close()

    def close(self) -> None:
        """Close the idle connections and refuse new calls (from any thread)."""
        self._closed = True
        idle, self._idle = self._idle, []
        for sock in idle:
            sock.close()
