"""One ``write`` per response: uvicorn's httptools protocol with coalesced transport writes.

uvicorn writes a response's status line and headers when the app sends
``http.response.start`` and its body when the app sends ``http.response.body``: two
``send`` system calls for one small response, and with ``TCP_NODELAY`` two segments, the
first of which wakes the client for nothing (docs/benchmarks.md, round 10: the head's write
was 3.3 % of the service's interpreter time). :class:`CoalescingHttpToolsProtocol` hands
the protocol a transport that keeps what is written during one turn of the event loop and
writes it at the end of that turn, as one buffer: the head and body of a response, sent
back to back by the app, leave in one system call. Nothing waits longer than the turn that
wrote it; ``close`` writes what is kept first; ``abort`` drops it, as the transport's own
``abort`` drops its buffer.

A complete response does not wait for the end of its turn: when uvicorn marks it complete
(its last body byte written), the protocol writes it at once. What the app does after its
last ``send`` in the same turn (the middleware's access line and request metrics, the
unwinding of the ASGI stack: about 0.3 ms of a lone admission, docs/benchmarks.md round 20)
then follows the answer instead of delaying it.

Used by ``serve`` for plain HTTP and server-side TLS; mutual TLS keeps its h11 protocol
(:mod:`engine.api.tls`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class CoalescingTransport:
    """An asyncio transport whose writes within one turn of the loop leave as one write."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._kept: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Keep ``data``; the first write of a turn schedules the turn's one write."""
        if not data:
            return
        if not self._kept:
            self._loop.call_soon(self.flush)
        self._kept.append(bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        """``write`` each."""
        for data in list_of_data:
            self.write(data)

    def flush(self) -> None:
        """Write what is kept now (no-op when nothing is, or the transport is closing)."""
        if not self._kept:
            return
        data = self._kept[0] if len(self._kept) == 1 else b"".join(self._kept)
        self._kept.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        """Write what is kept, then close (the transport still flushes its own buffer)."""
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        """Drop what is kept and abort."""
        self._kept.clear()
        self._transport.abort()

    def write_eof(self) -> None:
        """Write what is kept, then half-close."""
        self.flush()
        self._transport.write_eof()

    def get_write_buffer_size(self) -> int:
        """The transport's buffer plus what is kept."""
        return self._transport.get_write_buffer_size() + sum(len(d) for d in self._kept)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol writing through a :class:`CoalescingTransport`."""

    _coalescing: CoalescingTransport | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Wrap the connection's transport."""
        coalescing = self._coalescing = CoalescingTransport(transport, self.loop)
        super().connection_made(coalescing)  # type: ignore[arg-type]

    def on_response_complete(self) -> None:
        """The response's last byte was written: send it now, then go on as uvicorn does."""
        if self._coalescing is not None:
            self._coalescing.flush()
        super().on_response_complete()


__all__ = ["CoalescingHttpToolsProtocol", "CoalescingTransport"]
