"""A small client for a releasegate server (``check --server``, ``approve``, ``log export``)."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any

from engine.errors import ConfigError, EngineError, InputError

_TIMEOUT_S = 30.0


def server_token() -> str:
    """The bearer token from ``RELEASEGATE_TOKEN``."""
    token = os.environ.get("RELEASEGATE_TOKEN", "")
    if not token:
        raise ConfigError(
            "RELEASEGATE_TOKEN is not set; create one with `releasegate token create`"
        )
    return token


def call(server: str, method: str, path: str, *, body: Any = None, token: str | None = None) -> Any:
    """Send one JSON request; map HTTP errors onto the error tree (422 -> ``InputError``)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 - the user names the server URL
        server.rstrip("/") + path, data=data, method=method
    )
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    request.add_header("Authorization", f"Bearer {token or server_token()}")
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:  # noqa: S310
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = _error_detail(exc)
        if exc.code in (413, 422):
            raise InputError(f"the server refused the request (HTTP {exc.code}): {detail}") from exc
        raise EngineError(f"the server answered HTTP {exc.code}: {detail}") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise EngineError(f"cannot reach releasegate at {server}: {exc}") from exc


def _error_detail(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read())
    except (ValueError, OSError):
        return exc.reason if isinstance(exc.reason, str) else "error"
    if isinstance(body, dict):
        message = str(body.get("message", ""))
        errors = body.get("errors") or []
        locs = "; ".join(
            f"{e.get('loc')}: {e.get('message')}" for e in errors if isinstance(e, dict)
        )
        return f"{message} ({locs})" if locs else message
    return str(body)
