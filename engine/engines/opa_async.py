"""OPA's Data API from the event loop: non-blocking sockets, keep-alive, no thread.

The service decides on its event loop (``DecisionPipeline.decide_async``): a decision that
waits for OPA in a worker thread hands the interpreter lock back and forth between that
thread and the loop, and at 16 clients that cost more CPU than the wait itself
(docs/benchmarks.md). This client waits on the loop instead. It speaks just enough
HTTP/1.1 for OPA's answers (``Content-Length``, chunked, or until close), with the same
failure mapping as :class:`engine.engines.opa_http.OpaClient`: every call is bounded by
``timeout``, a stale keep-alive connection is retried once on a fresh one, and any failure
raises an :class:`engine.errors.PolicyError`.

The connections are plain non-blocking sockets driven with the loop's ``sock_*`` calls, so
they belong to no loop: any loop may use an idle one, and ``close`` works from any thread.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from engine.engines.opa_http import decision_result, input_body
from engine.errors import EngineUnavailable
from engine.models.decision import PolicyResult

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 64 * 1024 * 1024
POOL_SIZE = 64
"""Idle connections kept (OPA serves each on its own goroutine)."""
_RECV = 256 * 1024


class _StaleConnection(Exception):
    """A reused keep-alive connection was closed by OPA before it answered."""


class _Connection:
    """A socket and the bytes read past the previous answer."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()

    async def fill(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Read more; False at end of stream."""
        data = await loop.sock_recv(self.sock, _RECV)
        if not data:
            return False
        self.buffer += data
        return True

    async def read_until(self, loop: asyncio.AbstractEventLoop, mark: bytes, limit: int) -> bytes:
        """Up to and including ``mark``; EngineUnavailable past ``limit`` or at end of stream."""
        start = 0
        while (end := self.buffer.find(mark, start)) < 0:
            if len(self.buffer) > limit:
                raise EngineUnavailable("OPA answered with oversized headers")
            start = max(0, len(self.buffer) - len(mark) + 1)
            if not await self.fill(loop):
                raise ConnectionResetError("OPA closed the connection")
        if end > limit:
            raise EngineUnavailable("OPA answered with oversized headers")
        out = bytes(self.buffer[: end + len(mark)])
        del self.buffer[: end + len(mark)]
        return out

    async def read_exactly(self, loop: asyncio.AbstractEventLoop, size: int) -> bytes:
        while len(self.buffer) < size:
            if not await self.fill(loop):
                raise ConnectionResetError("OPA closed the connection mid-answer")
        out = bytes(self.buffer[:size])
        del self.buffer[:size]
        return out

    async def read_to_end(self, loop: asyncio.AbstractEventLoop) -> bytes:
        while await self.fill(loop):
            if len(self.buffer) > MAX_BODY_BYTES:
                raise EngineUnavailable("OPA's answer exceeds the size limit")
        out = bytes(self.buffer)
        self.buffer.clear()
        return out


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
        self._idle: list[_Connection] = []
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
        try:
            async with asyncio.timeout(self.timeout):
                conn = self._idle.pop() if self._idle else None
                if conn is not None:
                    try:
                        return await self._exchange(loop, conn, message, reused=True)
                    except _StaleConnection:
                        pass
                return await self._exchange(loop, await self._connect(loop), message, reused=False)
        except TimeoutError as exc:
            raise EngineUnavailable(f"OPA did not answer within {self.timeout}s") from exc

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> _Connection:
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
        return _Connection(sock)

    async def _exchange(
        self, loop: asyncio.AbstractEventLoop, conn: _Connection, message: bytes, *, reused: bool
    ) -> tuple[int, bytes]:
        keep = False
        try:
            try:
                await loop.sock_sendall(conn.sock, message)
                head = await conn.read_until(loop, b"\r\n\r\n", MAX_HEADER_BYTES)
            except OSError as exc:  # reset, broken pipe, closed by OPA while idle
                if reused:
                    raise _StaleConnection from exc
                raise EngineUnavailable(f"OPA is unreachable at {self.address}: {exc}") from exc
            status, headers = _parse_head(head)
            body, keep = await _read_body(loop, conn, headers)
            return status, body
        except OSError as exc:
            raise EngineUnavailable(f"OPA closed the connection mid-answer: {exc}") from exc
        finally:
            if keep and not conn.buffer and not self._closed and len(self._idle) < POOL_SIZE:
                self._idle.append(conn)
            else:
                conn.sock.close()

    def close(self) -> None:
        """Close the idle connections and refuse new calls (from any thread)."""
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.sock.close()


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """Status code and lower-cased headers of a response head; malformed: EngineUnavailable."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise EngineUnavailable(f"OPA answered with a malformed status line: {lines[0][:100]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise EngineUnavailable(f"OPA answered with a malformed header: {line[:100]!r}")
        headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


async def _read_body(
    loop: asyncio.AbstractEventLoop, conn: _Connection, headers: dict[str, str]
) -> tuple[bytes, bool]:
    """The body, and whether the connection may be reused."""
    keep = headers.get("connection", "").lower() != "close"
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return await _read_chunked(loop, conn), keep
    length = headers.get("content-length")
    if length is not None:
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            raise EngineUnavailable(f"OPA answered with a bad Content-Length: {length[:30]!r}")
        return await conn.read_exactly(loop, int(length)), keep
    return await conn.read_to_end(loop), False  # delimited by the end of the connection


async def _read_chunked(loop: asyncio.AbstractEventLoop, conn: _Connection) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        line = await conn.read_until(loop, b"\r\n", MAX_HEADER_BYTES)
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError as exc:
            message = f"OPA answered with a bad chunk size {size_text[:20]!r}"
            raise EngineUnavailable(message) from exc
        if size == 0:
            while (await conn.read_until(loop, b"\r\n", MAX_HEADER_BYTES)) != b"\r\n":
                pass  # trailers
            return b"".join(chunks)
        total += size
        if total > MAX_BODY_BYTES:
            raise EngineUnavailable("OPA's answer exceeds the size limit")
        chunks.append(await conn.read_exactly(loop, size))
        if await conn.read_exactly(loop, 2) != b"\r\n":
            raise EngineUnavailable("OPA answered with a malformed chunk")
