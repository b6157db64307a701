"""A lean HTTP client for OPA's Data API (``http.client``, keep-alive, one connection per thread).

Measured on this hot path, ``httpx`` costs 0.8-1.7 ms of CPU per 20 KB call against 0.2-0.3 ms
for an ``http.client``-level client, so the engine talks to OPA through this module.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from engine.errors import EngineUnavailable, PolicyEvalError
from engine.models.decision import PolicyResult


class _UnixHTTPConnection(http.client.HTTPConnection):
    """``HTTPConnection`` over a unix domain socket."""

    def __init__(self, path: str, *, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self._socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class OpaClient:
    """Posts input documents to ``/v1/data/<path>`` and parses the decision.

    ``address`` is ``http://host:port`` or ``unix:///path/to/socket``. Every call is bounded by
    ``timeout`` seconds; every failure raises a :class:`engine.errors.PolicyError`.
    """

    def __init__(self, address: str, *, timeout: float) -> None:
        self.address = address
        self.timeout = timeout
        parts = urlsplit(address)
        if parts.scheme == "unix":
            self._unix_path: str | None = parts.path
            self._host, self._port = "localhost", 0
        elif parts.scheme == "http":
            self._unix_path = None
            self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 8181
        else:
            raise EngineUnavailable(f"unsupported OPA address {address!r} (use http:// or unix://)")
        self._local = threading.local()
        self._all: set[http.client.HTTPConnection] = set()
        self._all_lock = threading.Lock()

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._unix_path is not None:
                conn = _UnixHTTPConnection(self._unix_path, timeout=self.timeout)
            else:
                conn = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
            self._local.conn = conn
            with self._all_lock:
                self._all.add(conn)
        return conn

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            with self._all_lock:
                self._all.discard(conn)
        self._local.conn = None

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        """One request with one retry on a stale keep-alive connection."""
        headers = {"Content-Type": "application/json"} if body is not None else {}
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                return response.status, response.read()
            except TimeoutError as exc:
                self._drop_connection()
                raise EngineUnavailable(f"OPA did not answer within {self.timeout}s") from exc
            except (ConnectionError, http.client.HTTPException, OSError) as exc:
                self._drop_connection()
                # NOTE(lead): a keep-alive connection closed by OPA fails on first use; a fresh
                # connection that fails as well means OPA is down.
                if attempt == 2 or isinstance(exc, FileNotFoundError | ConnectionRefusedError):
                    raise EngineUnavailable(f"OPA is unreachable at {self.address}: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def healthy(self, *, bundles: bool = True) -> bool:
        """``GET /health[?bundles]`` answered 200."""
        try:
            status, _ = self.request("GET", "/health?bundles" if bundles else "/health")
        except EngineUnavailable:
            return False
        return status == 200

    def evaluate(self, path: str, input_document: Mapping[str, Any]) -> PolicyResult:
        """Evaluate ``data.<path>`` and validate it as the decision result."""
        body = json.dumps({"input": input_document}, separators=(",", ":")).encode()
        status, raw = self.request("POST", f"/v1/data/{path}", body)
        if status != 200:
            raise PolicyEvalError(
                f"OPA answered HTTP {status}: {raw[:500].decode(errors='replace')}"
            )
        try:
            document = json.loads(raw)
        except ValueError as exc:
            raise PolicyEvalError(f"OPA answered with malformed JSON: {exc}") from exc
        if not isinstance(document, dict) or "result" not in document:
            raise PolicyEvalError(f"data.{path.replace('/', '.')} is undefined for this input")
        try:
            return PolicyResult.model_validate(document["result"])
        except ValueError as exc:
            raise PolicyEvalError(f"malformed policy result: {exc}") from exc

    def close(self) -> None:
        """Close every thread's connection."""
        with self._all_lock:
            conns, self._all = self._all, set()
        for conn in conns:
            conn.close()
        self._local = threading.local()
