"""The one error handler of the API: every error is ``{code, message, errors}`` (OPA ErrorV1).

* :class:`EngineError` keeps its own code: ``InputError`` 422, ``LogError``/``StoreError``
  503 (no verdict without a record), ``PolicyError``/``BundleError`` 503, others 500.
* ``RequestValidationError`` is 422 with one ``errors[]`` entry per field, ``loc`` dotted
  (``body.release.stage``).
* ``HTTPException`` keeps its status and headers (``WWW-Authenticate``, ``Retry-After``).
* Anything else is a 500 whose body says nothing about the internals.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine.errors import (
    BundleError,
    ConfigError,
    EngineError,
    InputError,
    LogError,
    PolicyError,
    SignatureError,
)

_logger = logging.getLogger("releasegate.api")

STATUS_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "request_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "rate_limited",
    503: "unavailable",
}


class ErrorItem(BaseModel):
    """One problem with one field."""

    loc: str
    message: str


class ErrorBody(BaseModel):
    """The body of every error response."""

    code: str
    message: str
    errors: list[ErrorItem] = []


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """A JSON error response in the one shape."""
    body = {"code": code, "message": message, "errors": errors or []}
    return JSONResponse(body, status_code=status, headers=headers)


def status_for(error: EngineError) -> int:
    """The HTTP status of an engine error."""
    if isinstance(error, InputError):
        return 422
    if isinstance(error, SignatureError | ConfigError):
        return 500
    if isinstance(error, LogError | PolicyError | BundleError):
        return 503
    return 500


_SERVER_MESSAGES = {
    "log_unavailable": "the decision log cannot be written; no decision was returned",
}


async def _engine_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, EngineError)
    status = status_for(exc)
    if status < 500:
        return error_response(
            status, exc.code, exc.message, errors=[e.as_dict() for e in exc.errors]
        )
    # NOTE: a server-side error's message may quote SQL, paths or the record being written
    # (which carries the verdict): neither the body nor the log line repeats it.
    cause = type(exc.__cause__).__name__ if exc.__cause__ is not None else None
    _logger.error(
        "request failed",
        extra={"fields": {"code": exc.code, "error_type": type(exc).__name__, "cause": cause}},
    )
    message = _SERVER_MESSAGES.get(exc.code, f"the service cannot answer now ({exc.code})")
    return error_response(status, exc.code, message)


def _loc(parts: Any) -> str:
    return ".".join(str(p) for p in parts) or "body"


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [{"loc": _loc(e.get("loc", ())), "message": str(e.get("msg"))} for e in exc.errors()]
    first = errors[0] if errors else {"loc": "body", "message": "invalid"}
    message = f"invalid request: {first['loc']}: {first['message']}"
    return error_response(422, "invalid_input", message, errors=errors)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = STATUS_CODES.get(exc.status_code, "error" if exc.status_code < 500 else "internal_error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    return error_response(exc.status_code, code, message, headers=dict(exc.headers or {}))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    _logger.error(
        "unhandled error",
        extra={
            "fields": {
                "method": request.method,
                "path": request.url.path,
                "error_type": type(exc).__name__,
            }
        },
    )
    return error_response(500, "internal_error", "internal error; see the service log")


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(EngineError, _engine_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for these error statuses."""
    descriptions = {
        401: "missing, invalid or revoked token",
        403: "the token's roles may not call this route",
        404: "not found",
        409: "conflict with the resource's state",
        413: "request body too large",
        422: "invalid input; errors[] names each field",
        429: "too many failed authentication attempts (Retry-After)",
        503: "the decision log cannot be written or the engine is unavailable",
    }
    return {s: {"model": ErrorBody, "description": descriptions.get(s, "error")} for s in statuses}
