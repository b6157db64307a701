"""The routes called at rate, served ahead of FastAPI's router: ``POST /v1/decisions`` (every
pipeline run) and ``POST /v1/admission[/{environment}]`` (every object the API server admits).

FastAPI resolves a route's dependency tree, its body parameter and its included routers on
every request; for these two routes that was about a tenth of a decision's CPU in the
service (``docs/benchmarks.md``, round 6). Here the same steps are written out once, on
plain Starlette routes placed first in the app's router:

1. the caller is authenticated and its role checked by the same functions as every other
   route (:func:`engine.api.deps.authenticate`, :class:`engine.api.deps.RoleChecker`): 429,
   401 and 403 exactly as there. Unlike FastAPI, which parses a JSON body before it runs
   dependencies, an unauthenticated body is never parsed;
2. the body is read as FastAPI reads a JSON body parameter (:func:`json_body`): strict
   content type, the same ``json_invalid`` error, ``missing`` for an empty body, and
   validation errors located under ``body``. A decision request is first offered to a lazy
   reader (:mod:`engine.api.lazy_body`) that leaves its evidence documents unparsed until
   a cache misses; whatever it does not take is read this way;
3. the work is the route module's own function (``decide_response``, ``admission_review``).

What they raise is answered by the app's exception handlers (``engine.api.errors``), as for
any route. While FastAPI's native telemetry is off, :class:`engine.api.hot_lane.ServiceAPI`
serves them ahead of FastAPI's middleware stack and router (the "hot lane"). FastAPI's
``app.dependency_overrides`` does not reach them (nothing here uses it: tests build apps
from real parts). The FastAPI declarations of these routes stay in
``routes/decisions.py`` and ``routes/admission.py``: they are what the OpenAPI document
describes, they call the same functions, and ``tests/api/test_hot_routes.py`` holds both to
the same answers.
"""

from __future__ import annotations

import email.message
import functools
import json
from typing import Any

from fastapi import HTTPException
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from engine import jsonfast
from engine.api.deps import AppState, RoleChecker, authenticate, bearer_scheme, get_app_state
from engine.api.lazy_body import read_decision_request
from engine.api.routes.admission import admission_review
from engine.api.routes.decisions import decide_response
from engine.auth import Principal
from engine.models.raw import UnreadableEvidence
from engine.models.request import DecisionRequestV1

_CI = RoleChecker("ci")
_ADMISSION = RoleChecker("admission")


async def _caller(request: Request, role: RoleChecker) -> tuple[AppState, Principal]:
    state = await get_app_state(request)
    principal = await authenticate(request, state, await bearer_scheme(request))
    return state, await role(principal)


@functools.lru_cache(maxsize=64)
def _is_json(content_type: str | None) -> bool:
    # Parsed by the standard library's MIME parser, as FastAPI does: 3 µs, so a client's
    # few content types are parsed once each.
    if not content_type:
        return False  # FastAPI's strict content type: no header, no JSON
    message = email.message.Message()
    message["content-type"] = content_type
    if message.get_content_maintype() != "application":
        return False
    subtype = message.get_content_subtype()
    return subtype == "json" or subtype.endswith("+json")


def _missing_body() -> RequestValidationError:
    error = ValidationError.from_exception_data(
        "Field required", [{"type": "missing", "loc": ("body",), "input": {}}]
    ).errors(include_url=False)[0]
    return RequestValidationError([{**error, "input": None}])


async def json_body(request: Request) -> Any:
    """The body as FastAPI reads a required JSON body parameter.

    JSON when the content type says so, else the raw bytes (for the validator to refuse);
    an empty body is a ``missing`` error and text that is not JSON a ``json_invalid`` one,
    both 422 through the app's handler; JSON the parser cannot take (nested too deep) is 400.
    """
    body = await request.body()
    if not body:
        raise _missing_body()
    if not _is_json(request.headers.get("content-type")):
        return body
    try:
        return jsonfast.loads(body)
    except json.JSONDecodeError as exc:
        error = {
            "type": "json_invalid",
            "loc": ("body", exc.pos),
            "msg": "JSON decode error",
            "input": {},
            "ctx": {"error": exc.msg},
        }
        raise RequestValidationError([error], body=exc.doc) from exc
    except (RecursionError, ValueError) as exc:  # nested too deep, bad UTF-8
        raise HTTPException(status_code=400, detail="There was an error parsing the body") from exc


def _decision_request(value: Any) -> DecisionRequestV1:
    try:
        return DecisionRequestV1.model_validate(value, from_attributes=True)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors, body=value) from exc


async def _lazy_request(request: Request) -> DecisionRequestV1 | None:
    body = await request.body()
    if not body or not _is_json(request.headers.get("content-type")):
        return None
    return read_decision_request(body)


async def decide(request: Request) -> Response:
    """``POST /v1/decisions`` (role ``ci``).

    The body is read lazily when it can be (:mod:`engine.api.lazy_body`: the evidence
    stays text until a cache misses), else, and whenever a raw document turns out
    unreadable before anything was decided, eagerly as FastAPI reads it.
    """
    state, principal = await _caller(request, _CI)
    lazy = await _lazy_request(request)
    if lazy is not None:
        try:
            return await decide_response(state.pipeline, lazy, principal)
        except UnreadableEvidence:
            pass  # read again below: the answer (usually 400) is the eager reader's
    body = _decision_request(await json_body(request))
    return await decide_response(state.pipeline, body, principal)


async def admission(request: Request) -> Response:
    """``POST /v1/admission[/{environment}]`` (role ``admission``)."""
    state, principal = await _caller(request, _ADMISSION)
    body = await json_body(request)
    return await admission_review(
        body,
        principal=principal,
        pipeline=state.pipeline,
        log=state.decision_log,
        settings=state.settings,
        environment=request.path_params.get("environment"),
    )


class HotRoute(Route):
    """A Starlette route that names itself in the scope, as FastAPI's routes do: the access
    log and the request metrics label a request with ``scope["route"].path``."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request."""
        scope["route"] = self
        await super().handle(scope, receive, send)


def hot_routes() -> list[BaseRoute]:
    """The routes to put first in the app's router."""
    return [
        HotRoute("/v1/decisions", decide, methods=["POST"]),
        HotRoute("/v1/admission", admission, methods=["POST"]),
        HotRoute("/v1/admission/{environment}", admission, methods=["POST"]),
    ]


__all__ = ["HotRoute", "hot_routes", "json_body"]
