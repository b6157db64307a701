"""The least a front can do per admission: HTTP in, OPA, a signed durable record, HTTP out.

``python -m benchmarks.relay --port P --opa-socket PATH --opa-input FILE --record FILE
--state-dir DIR``

Scenario 2's target (an admission's p99 within 5 ms at 100/s) is about a process that stands
in front of OPA and logs every decision, signed and durable, before it answers (principle 4).
This is such a process with nothing else in it, to measure what that shape alone answers in
on this machine, in the same rounds as the service: one event loop (uvloop, as the service
runs), HTTP/1.1 keep-alive with no framework, and per request

1. the whole request read (its bytes are not parsed: no review, no lookup, no facts);
2. ``POST /v1/data/releasegate/decision`` to a running OPA with a fixed body (the input
   document the service built for the warm-up admission), over a kept-alive connection to
   its unix socket (as the service reaches its managed OPA), with asyncio's streams: in
   process they cost 0.08-0.10 ms of CPU per exchange back to back and 0.25-0.33 ms at
   200/s, against 0.15-0.19 and 0.33-0.44 ms for the service's own client
   (:class:`engine.engines.opa_async.AsyncOpaClient`), so the floor does not use it;
3. a copy of the warm-up admission's record sealed (RFC 8785, SHA-256, Ed25519) and
   committed with its fsync to a SQLite log, in a transaction of its own, on the loop's
   thread (no hand-over): :class:`engine.log.commit_floor.RecordCopies`;
4. ``{"allowed":true}`` when OPA's answer allows, ``{"allowed":false}`` otherwise.

It is a measuring instrument, not a server: it trusts its client, and answers 500 and
closes the connection if OPA or the log fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from pathlib import Path

from engine.engines.base import DECISION_PATH
from engine.log.commit_floor import RecordCopies
from engine.log.record import DecisionRecordV1

ALLOWED = b'{"allowed":true}'
DENIED = b'{"allowed":false}'
OPA_ALLOWS = b'"verdict":"allow"'


def _content_length(head: bytes) -> int:
    """The ``Content-Length`` of an HTTP/1.1 message head (0 when absent)."""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


def _response(status: str, body: bytes) -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


class OpaConnection:
    """One kept-alive HTTP/1.1 connection to OPA, sending one fixed evaluation."""

    def __init__(self, socket_path: Path, input_body: bytes) -> None:
        self.socket_path = socket_path
        self.request = (
            f"POST /v1/data/{DECISION_PATH} HTTP/1.1\r\nHost: opa\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(input_body)}\r\n\r\n"
        ).encode() + input_body
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def evaluate(self) -> bytes:
        """OPA's answer (its body), on a new connection if the last one was closed."""
        if self._streams is None:
            self._streams = await asyncio.open_unix_connection(self.socket_path)
        reader, writer = self._streams
        try:
            writer.write(self.request)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"OPA answered {head.splitlines()[0]!r}")
            length = _content_length(head)
            if length <= 0:
                raise RuntimeError("OPA's answer has no Content-Length")
            return await reader.readexactly(length)
        except BaseException:
            self._streams = None
            writer.close()
            raise


class Relay:
    """The front: one OPA connection, one log; requests are served one at a time."""

    def __init__(self, opa: OpaConnection, copies: RecordCopies) -> None:
        self.opa = opa
        self.copies = copies
        self._turn = asyncio.Lock()

    async def answer(self) -> bytes:
        """Evaluate, record, and say whether OPA allowed."""
        async with self._turn:
            verdict = await self.opa.evaluate()
            self.copies.commit(self.copies.draft())
        return ALLOWED if OPA_ALLOWS in verdict else DENIED

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One client connection: requests in turn until it closes."""
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                await reader.readexactly(_content_length(head))
                try:
                    body = await self.answer()
                except Exception as exc:  # noqa: BLE001 - reported to the client, then closed
                    writer.write(_response("500 Internal Server Error", repr(exc).encode()))
                    return
                writer.write(_response("200 OK", body))
        finally:
            writer.close()


async def run(args: argparse.Namespace) -> None:
    """Serve until SIGTERM or SIGINT."""
    record = DecisionRecordV1.model_validate_json(args.record.read_bytes())
    copies = RecordCopies(args.state_dir, record)
    try:
        relay = Relay(OpaConnection(args.opa_socket, args.opa_input.read_bytes()), copies)
        server = await asyncio.start_server(relay.serve, "127.0.0.1", args.port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with server:
            await stop.wait()
    finally:
        copies.close()


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and serve on uvloop."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.relay", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--opa-socket", type=Path, required=True, help="a running OPA's socket")
    parser.add_argument("--opa-input", type=Path, required=True, help='{"input": ...} to send')
    parser.add_argument("--record", type=Path, required=True, help="a logged record's JSON")
    parser.add_argument("--state-dir", type=Path, required=True, help="the log's directory")
    args = parser.parse_args(argv)
    import uvloop

    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
