"""The service's ASGI middleware: body size limit, in-flight gauge, one JSON log line per
request, the ``Server-Timing`` header (``engine.api.timing``), and the work a request leaves
for after its answer (``engine.api.afterwards``: its decision's log line and metrics), run
after the response's last ``send`` and before the access line.

The body is read here, up to ``max_body_bytes`` (a ``Content-Length`` above the limit is
refused before a byte is read; a chunked body is counted as it streams), and replayed to the
app, so no route ever sees more than the limit.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from engine.api.afterwards import AnswerFirst
from engine.api.metrics import ServiceMetrics
from engine.api.timing import RequestTiming, current_timing

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

access_logger = logging.getLogger("releasegate.access")


class _TooLarge(Exception):
    pass


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_413(send: Send, limit: int) -> None:
    body = json.dumps(
        {
            "code": "request_too_large",
            "message": f"request body exceeds {limit} bytes",
            "errors": [],
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, list[Message]]:
    chunks: list[bytes] = []
    extra: list[Message] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            extra.append(message)  # http.disconnect
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks), extra


class ServiceMiddleware:
    """Size limit, in-flight requests, request metrics, ``Server-Timing`` and the access log."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        metrics: ServiceMetrics,
        server_timing: bool = True,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics
        self.server_timing = server_timing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500, "decision_id": None}
        timing = RequestTiming()
        timing_token = current_timing.set(timing)
        afterwards = AnswerFirst()
        self.metrics.in_flight.inc()
        self.metrics.serving += 1
        try:
            length = _content_length(scope)
            if length is not None and length > self.max_body_bytes:
                status["code"] = 413
                await _send_413(send, self.max_body_bytes)
                return
            try:
                body, extra = await _read_body(receive, self.max_body_bytes)
            except _TooLarge:
                status["code"] = 413
                await _send_413(send, self.max_body_bytes)
                return
            replay: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]
            replay.extend(extra)

            async def replay_receive() -> Message:
                if replay:
                    return replay.pop(0)
                return await receive()

            async def capture_send(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status["code"] = int(message["status"])
                    headers = message.get("headers", [])
                    for name, value in headers:
                        if name.lower() == b"x-releasegate-decision-id":
                            status["decision_id"] = value.decode("latin-1")
                    if self.server_timing:
                        spent = timing.header_value(time.perf_counter() - started)
                        message["headers"] = [*headers, (b"server-timing", spent)]
                await send(message)

            await self.app(scope, replay_receive, capture_send)
        finally:
            current_timing.reset(timing_token)
            self.metrics.in_flight.dec()
            self.metrics.serving -= 1
            afterwards.finish()
            self._log(scope, int(status["code"] or 500), status["decision_id"], started, timing)

    def _log(
        self, scope: Scope, code: int, decision_id: Any, started: float, timing: RequestTiming
    ) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        self.metrics.requests.labels(scope.get("method", ""), template, str(code)).inc()
        principal = scope.get("state", {}).get("principal")
        client = scope.get("client")
        fields = {
            "event": "request",
            "method": scope.get("method"),
            "path": scope.get("path"),
            "route": template,
            "status": code,
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
            "client": client[0] if client else None,
            "subject": getattr(principal, "subject", None),
            "decision_id": decision_id,
        }
        if timing.opa_s is not None:
            fields["opa_ms"] = round(timing.opa_s * 1000, 3)
        if timing.log_s is not None:
            fields["log_ms"] = round(timing.log_s * 1000, 3)
        access_logger.info("request", extra={"fields": fields})
