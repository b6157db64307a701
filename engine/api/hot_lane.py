"""``ServiceAPI``: FastAPI, with the hot routes served ahead of its middleware stack.

Every request to a FastAPI app goes through ``FastAPI.__call__`` (native OpenTelemetry),
Starlette's app, ``ServerErrorMiddleware``, FastAPI's exception telemetry and body-limit
middleware, the app's own middleware, ``ExceptionMiddleware``, FastAPI's
``AsyncExitStackMiddleware`` and the router, which tries each route in turn. For the two
routes called at rate (``engine.api.hot_routes``: every pipeline run, every object the API
server admits) the lane skips what does nothing for them: about 1 % of the app's CPU per
request in process (docs/benchmarks.md, round 11; round 10's prototype, measured through
the service on a noisy host, had suggested 5-9 %).

The *hot lane* serves a request that matches a hot route with only the layers that act on
it when OpenTelemetry is off: ``ServerErrorMiddleware`` (the app's 500 handler), the app's
own middleware (``add_middleware``: the body limit, the access log, the request metrics),
``ExceptionMiddleware`` (the app's other handlers) and the route itself, which sets
``scope["route"]`` as the router would. The layers it leaves out do nothing for these
routes: exception telemetry and FastAPI's route selection record only into a request's
telemetry, which there is none of; FastAPI's own body limit is unset (the service's
middleware enforces ``max_body_bytes``); the exit stack closes files and dependencies that
the hot routes do not have.

Anything else takes FastAPI's path unchanged: another route or method, a websocket, the
lifespan, an app with a ``root_path``, and every request while FastAPI's native telemetry
is enabled (a tracer, meter or logger provider configured), so that its spans and metrics
see every request. A FastAPI without that switch (``_native_telemetry``) never uses the
lane. ``tests/api/test_hot_routes.py`` holds the lane to the answers of FastAPI's own
routes, error paths included.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from engine.api.hot_routes import HotRoute

_ROUTE = "releasegate.hot_route"
"""Scope key: the hot route the lane matched, for the lane's innermost app."""


async def _serve_route(scope: Scope, receive: Receive, send: Send) -> None:
    route: HotRoute = scope.pop(_ROUTE)
    await route.handle(scope, receive, send)


class ServiceAPI(FastAPI):
    """The service's FastAPI app, with the hot lane (module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hot_lane: ASGIApp | None = None
        """Built with the first request it serves (as Starlette builds its stack)."""
        self._hot_routes: list[HotRoute] | None = None

    def _lane_open(self) -> bool:
        telemetry = getattr(self, "_native_telemetry", None)
        enabled = getattr(telemetry, "enabled", None)
        return callable(enabled) and not enabled() and not self.root_path

    def _build_hot_lane(self) -> ASGIApp:
        """``build_middleware_stack`` for the hot routes: the same handlers and middleware
        classes (new instances: each wraps its own inner app), fewer layers."""
        error_handler = None
        handlers: dict[Any, Any] = {}
        for key, value in self.exception_handlers.items():
            if key in (500, Exception):
                error_handler = value
            else:
                handlers[key] = value
        app: ASGIApp = ExceptionMiddleware(_serve_route, handlers=handlers, debug=self.debug)
        for cls, args, kwargs in reversed(self.user_middleware):
            app = cls(app, *args, **kwargs)
        return ServerErrorMiddleware(app, handler=error_handler, debug=self.debug)

    def _match_hot_route(self, scope: Scope) -> HotRoute | None:
        routes = self._hot_routes
        if routes is None:
            # The hot routes are those of the router (tests take them out before a request).
            routes = self._hot_routes = [r for r in self.router.routes if isinstance(r, HotRoute)]
        for route in routes:
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                scope.update(child_scope)
                return route
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A hot route through the lane; anything else through FastAPI."""
        if scope["type"] == "http" and "fastapi.telemetry" not in scope and self._lane_open():
            route = self._match_hot_route(scope)
            if route is not None:
                lane = self.hot_lane
                if lane is None:
                    lane = self.hot_lane = self._build_hot_lane()
                scope["app"] = self
                scope.setdefault("router", self.router)
                scope[_ROUTE] = route
                await lane(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


__all__ = ["ServiceAPI"]
