"""HTTP/1.1 responses read from a blocking socket: the wire half of :class:`OpaClient`.

:func:`read_response` parses the bytes ``recv`` returned, with a deadline for the whole
call: the status line (HTTP/1.x), headers (case-insensitive; bare-LF lines and folded lines
accepted), and the body framed by ``Content-Length``, ``Transfer-Encoding: chunked`` (with
extensions and trailers) or the end of the connection. 1xx answers are skipped; 204, 304 and
answers to HEAD have no body. It is strict where a wrong answer could pass for a right one:
a malformed status line, header or chunk, a ``Content-Length`` that is not a number (or
repeated with another), a transfer or content coding other than ``chunked`` / ``identity``,
headers over :data:`MAX_HEADER_BYTES` or a body over :data:`MAX_BODY_BYTES` raise
:class:`Malformed`; it never guesses.

The parser does no I/O (:func:`parse_response` is a generator that says how many more bytes
it wants and is sent what arrived), so the blocking client (:func:`read_response`) and the
event-loop client (:mod:`engine.engines.opa_async`) read answers the same way.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Generator
from time import monotonic

MAX_HEADER_BYTES = 64 * 1024
"""The largest response header section (and chunk-size or trailer line) accepted."""
MAX_BODY_BYTES = 64 * 1024 * 1024
"""The largest response body accepted."""

RECV_BYTES = 64 * 1024
_STATUS_LINE = re.compile(rb"HTTP/1\.(\d) (\d{3})(?:[ \t][^\r\n]*)?\Z")
_FRAMING_FIELDS = frozenset(
    (b"content-length", b"transfer-encoding", b"connection", b"content-encoding")
)
_HEX_DIGITS = b"0123456789abcdefABCDEF"


class Malformed(Exception):
    """The response breaks HTTP/1.1 framing or the size limits."""


Response = tuple[int, bytes, bool]
"""Status, body, and whether the connection may carry the next request."""
Parser = Generator[int, bytes, Response]
"""Yields how many bytes it wants next; is sent the bytes received (``b""``: the peer closed)."""


def remaining(deadline: float) -> float:
    left = deadline - monotonic()
    if left <= 0:
        raise TimeoutError
    return left


def recv_some(sock: socket.socket, size: int, deadline: float) -> bytes:
    sock.settimeout(remaining(deadline))
    return sock.recv(size)


def _head_end(buf: bytes, start: int) -> tuple[int, int]:
    """Where the header section starting at ``start`` ends: (its last LF, the body's start).

    ``(-1, -1)`` while the blank line has not arrived. Lines end in CRLF; a bare LF is tolerated.
    """
    crlf = buf.find(b"\n\r\n", start)
    lf = buf.find(b"\n\n", start, crlf + 1 if crlf >= 0 else len(buf))
    if lf >= 0:
        return lf, lf + 2
    if crlf >= 0:
        return crlf, crlf + 3
    return -1, -1


def _content_length(value: bytes) -> int:
    """A ``Content-Length`` value; a repeated field must repeat the same number."""
    if value.isdigit() and len(value) < 19:
        return int(value)
    numbers = {item.strip(b" \t") for item in value.split(b",")}
    if len(numbers) == 1:
        (text,) = numbers
        if text.isdigit() and len(text) < 19:
            return int(text)
    raise Malformed(f"bad Content-Length {value[:40]!r}")


class _Reader:
    """Bytes already received, and the body framings that may need more of them."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int) -> None:
        self.data = data
        self.pos = pos

    def more(self, size: int, what: str) -> Generator[int, bytes, bytes]:
        chunk = yield size
        if not chunk:
            raise Malformed(f"the connection closed inside {what}")
        return chunk

    def line(self) -> Generator[int, bytes, bytes]:
        """The next line, without its CRLF (or LF)."""
        while True:
            end = self.data.find(b"\n", self.pos)
            if end >= 0:
                line = self.data[self.pos : end]
                self.pos = end + 1
                return line[:-1] if line.endswith(b"\r") else line
            if len(self.data) - self.pos > MAX_HEADER_BYTES:
                raise Malformed(f"a chunk-size or trailer line exceeds {MAX_HEADER_BYTES} bytes")
            more = yield from self.more(RECV_BYTES, "the chunked body")
            self.data = self.data[self.pos :] + more
            self.pos = 0

    def take(self, size: int) -> Generator[int, bytes, bytes]:
        """Exactly ``size`` bytes."""
        end = self.pos + size
        if end <= len(self.data):
            out = self.data[self.pos : end]
            self.pos = end
            return out
        parts = [self.data[self.pos :]]
        need = end - len(self.data)
        while need:
            chunk = yield from self.more(min(need, RECV_BYTES), "the chunked body")
            parts.append(chunk)
            need -= len(chunk)
        self.data, self.pos = b"", 0
        return b"".join(parts)

    def chunked(self) -> Generator[int, bytes, bytes]:
        """A ``Transfer-Encoding: chunked`` body; its trailer fields are read and ignored."""
        parts: list[bytes] = []
        total = 0
        while True:
            line = yield from self.line()
            size_text = line.split(b";", 1)[0].strip(b" \t")
            if not size_text or len(size_text) > 16 or size_text.translate(None, _HEX_DIGITS):
                raise Malformed(f"bad chunk-size line {line[:80]!r}")
            size = int(size_text, 16)
            if size == 0:
                break
            total += size
            if total > MAX_BODY_BYTES:
                raise Malformed(f"the chunked body exceeds {MAX_BODY_BYTES} bytes")
            parts.append((yield from self.take(size)))
            if (yield from self.line()):
                raise Malformed("chunk data is not followed by CRLF")
        trailer = 0
        while line := (yield from self.line()):
            trailer += len(line)
            if trailer > MAX_HEADER_BYTES:
                raise Malformed(f"the trailer section exceeds {MAX_HEADER_BYTES} bytes")
        return b"".join(parts)

    def exactly(self, length: int) -> Generator[int, bytes, bytes]:
        """A body of ``Content-Length`` bytes."""
        parts = [self.data[self.pos :]]
        have = len(parts[0])
        while have < length:
            chunk = yield min(length - have, RECV_BYTES)
            if not chunk:
                raise Malformed(f"the connection closed after {have} of {length} body bytes")
            parts.append(chunk)
            have += len(chunk)
        self.data, self.pos = b"", 0
        return b"".join(parts)

    def until_close(self) -> Generator[int, bytes, bytes]:
        """A body delimited by the end of the connection."""
        parts = [self.data[self.pos :]]
        total = len(parts[0])
        while chunk := (yield RECV_BYTES):
            total += len(chunk)
            if total > MAX_BODY_BYTES:
                raise Malformed(f"the response body exceeds {MAX_BODY_BYTES} bytes")
            parts.append(chunk)
        self.data, self.pos = b"", 0
        return b"".join(parts)


def read_response(sock: socket.socket, buf: bytes, deadline: float, *, head_only: bool) -> Response:
    """The response whose first bytes are ``buf``, read from a blocking socket by ``deadline``."""
    parser = parse_response(buf, head_only=head_only)
    try:
        want = next(parser)
        while True:
            want = parser.send(recv_some(sock, want, deadline))
    except StopIteration as done:
        response: Response = done.value
        return response


def parse_response(buf: bytes, *, head_only: bool) -> Parser:
    """Parse the response whose first bytes are ``buf``: (status, body, keep the connection)."""
    start = 0
    while True:
        last_lf, body_start = _head_end(buf, start)
        while last_lf < 0:
            if len(buf) - start > MAX_HEADER_BYTES:
                raise Malformed(f"the response headers exceed {MAX_HEADER_BYTES} bytes")
            more = yield RECV_BYTES
            if not more:
                raise Malformed("the connection closed inside the response headers")
            buf += more
            last_lf, body_start = _head_end(buf, start)
        if last_lf - start > MAX_HEADER_BYTES:
            raise Malformed(f"the response headers exceed {MAX_HEADER_BYTES} bytes")
        first_lf = buf.find(b"\n", start, last_lf)
        if first_lf < 0:
            first_lf = last_lf
        status_line = buf[start:first_lf].rstrip(b"\r")
        match = _STATUS_LINE.match(status_line)
        if match is None:
            raise Malformed(f"bad status line {status_line[:80]!r}")
        status = int(match[2])
        fields: dict[bytes, bytes] = {}
        if first_lf < last_lf:
            folding: bytes | None = None
            for line in buf[first_lf + 1 : last_lf].lower().split(b"\n"):
                if line.startswith((b" ", b"\t")):  # obs-fold: continues the previous field
                    if folding is not None:
                        fields[folding] += b" " + line.strip(b" \t\r")
                    continue
                name, colon, value = line.partition(b":")
                if not colon or not name or name.endswith((b" ", b"\t")):
                    raise Malformed(f"bad header line {line[:80]!r}")
                folding = None
                if name in _FRAMING_FIELDS:
                    value = value.strip(b" \t\r")
                    seen = fields.get(name)
                    fields[name] = value if seen is None else seen + b", " + value
                    folding = name
        if status >= 200:
            break
        if status == 101:
            raise Malformed("unexpected 101 Switching Protocols")
        start = body_start  # an interim 1xx response; the final one follows

    options = fields.get(b"connection")
    tokens = {token.strip() for token in options.split(b",")} if options else set()
    if match[1] == b"0":  # HTTP/1.0: persistent only when the server says so
        keep = b"keep-alive" in tokens
    else:
        keep = b"close" not in tokens
    coding = fields.get(b"content-encoding")
    if coding and coding != b"identity":
        raise Malformed(f"unsupported Content-Encoding {coding[:40]!r}")
    if head_only or status in (204, 304):
        return status, b"", keep and len(buf) == body_start
    transfer = fields.get(b"transfer-encoding")
    length = fields.get(b"content-length")
    reader = _Reader(buf, body_start)
    if transfer is not None:
        if transfer != b"chunked":
            raise Malformed(f"unsupported Transfer-Encoding {transfer[:40]!r}")
        body = yield from reader.chunked()
        # A response framed both ways is suspect (RFC 9112 6.3): do not reuse its connection.
        keep = keep and length is None
    elif length is not None:
        size = _content_length(length)
        if size > MAX_BODY_BYTES:
            raise Malformed(f"the response body ({size} bytes) exceeds {MAX_BODY_BYTES} bytes")
        end = body_start + size
        if end <= len(buf):  # the usual case: the whole response came with the first recv
            return status, buf[body_start:end], keep and end == len(buf)
        body = yield from reader.exactly(size)
    else:
        return status, (yield from reader.until_close()), False
    return status, body, keep and reader.pos == len(reader.data)
