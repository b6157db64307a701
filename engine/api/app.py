"""``create_app(settings)``: the decision service, with no import-time globals.

Everything a request needs lives on ``app.state.releasegate`` (:class:`AppState`), opened by
the lifespan and closed with it. Parts passed in (``runtime``, ``decision_log``, ...) are
used as they are and left open for their owner to close; parts the app opens, it closes.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import APIRouter, FastAPI

from engine import __version__, helper_threads
from engine.api.deps import AppState
from engine.api.errors import install_error_handlers
from engine.api.heap import freeze_startup_heap, thaw_heap
from engine.api.hot_lane import ServiceAPI
from engine.api.metrics import MeteredEngine, MeteredRecorder, ServiceMetrics
from engine.api.middleware import ServiceMiddleware
from engine.approvals import ApprovalStore
from engine.auth import FailureLimiter
from engine.auth.sql import database_url
from engine.auth.tokens import TokenStore
from engine.config import Settings
from engine.decision import DecisionPipeline
from engine.log import DecisionLog, MaskRule, open_decision_log
from engine.models.decision import Decision
from engine.runtime import Runtime, open_runtime

_decision_logger = logging.getLogger("releasegate.decisions")
_logger = logging.getLogger("releasegate.api")

OPTIONAL_ROUTERS = ("engine.api.routes.admission", "engine.api.routes.hooks")
"""Adapter routers, included when their modules exist (each exposes ``router``)."""

_DESCRIPTION = """Policy-as-code release gate. `POST /v1/decisions` returns `allow`, `pause` or
`rollback` with reasons; every decision is signed and appended to a tamper-evident log.
Authenticate with `Authorization: Bearer <token>`; each token carries roles (`ci`,
`admission`, `rollout`, `approver`, `auditor`, `admin`; `admin` may call every route).
Errors are `{code, message, errors}`."""


def _log_decision(decision: Decision, caller: str | None, adapter: str) -> None:
    fields = {
        "event": "decision",
        "decision_id": decision.decision_id,
        "verdict": decision.verdict.value,
        "reasons": [r.code for r in decision.reasons],
        "service": decision.release.get("service"),
        "environment": decision.release.get("environment"),
        "release_id": decision.release.get("id"),
        "artifact_digest": decision.artifact.get("digest"),
        "requested_by": decision.release.get("requested_by"),
        "caller": caller,
        "adapter": adapter,
        "dry_run": decision.dry_run,
        "log_index": decision.log.index if decision.log else None,
    }
    _decision_logger.info("decision", extra={"fields": fields})


def open_state(
    settings: Settings,
    metrics: ServiceMetrics,
    *,
    runtime: Runtime | None = None,
    decision_log: DecisionLog | None = None,
    approvals: ApprovalStore | None = None,
    tokens: TokenStore | None = None,
) -> AppState:
    """Open (or adopt) every part and wire the metered pipeline."""
    # Every serving path comes through here before a request: the helper threads start
    # with the first append or commit, so they all start under this policy.
    helper_threads.configure(settings.helper_scheduling)
    closers: list[Any] = []
    try:
        url = database_url(settings.state_dir, settings.database_url)
        if decision_log is None:
            masks = [MaskRule.parse(p) for p in settings.mask_paths]
            decision_log = open_decision_log(
                settings.state_dir, database_url=settings.database_url, masks=masks
            )
            closers.append(decision_log)
        if approvals is None:
            approvals = ApprovalStore(
                url,
                default_ttl_s=settings.approval_default_ttl_s,
                max_ttl_s=settings.approval_max_ttl_s,
            )
            closers.append(approvals)
        if tokens is None:
            tokens = TokenStore(url, cache_ttl_s=settings.token_cache_ttl_s, refresh_ahead=True)
            closers.append(tokens)
        # A lone request's record commits on the event loop (no hand-over to a thread).
        decision_log.commit_alone_on_the_loop(lambda: metrics.serving <= 1)
        recorder = MeteredRecorder(decision_log, metrics, on_record=_log_decision)
        if runtime is None:
            runtime = open_runtime(settings, recorder=recorder, approvals=approvals)
            closers.append(runtime)
        providers = dataclasses.replace(runtime.pipeline.providers, approvals=approvals)
        pipeline = DecisionPipeline(
            engine=MeteredEngine(runtime.engine, metrics), providers=providers, recorder=recorder
        )
        metrics.watch_engine(runtime.engine)
        metrics.watch_cache(getattr(providers.provenance, "verifier", None))
        watcher = _watch_bundle(settings, runtime, metrics)
        if watcher is not None:
            closers.append(watcher)
    except BaseException:
        close_state(closers)
        raise
    return AppState(
        settings=settings,
        engine=runtime.engine,
        pipeline=pipeline,
        decision_log=decision_log,
        approvals=approvals,
        tokens=tokens,
        metrics=metrics,
        limiter=FailureLimiter(
            limit=settings.auth_failure_limit, window_s=settings.auth_failure_window_s
        ),
        closers=closers,
        bundle_watcher=watcher if watcher is not None else _shared_reloads(runtime.engine),
    )


def _shared_reloads(engine: Any) -> Any:
    """A ``serve --workers`` worker: its supervisor's bundle reloads, as a watcher's status."""
    from engine.engines.shared_opa import SharedOpaEngine

    return engine if isinstance(engine, SharedOpaEngine) else None


def _watch_bundle(settings: Settings, runtime: Runtime, metrics: ServiceMetrics) -> Any:
    """Hot reload for a managed OPA: poll the bundle file (``bundle_poll_s``)."""
    from engine.engines.bundle_watch import BundleWatcher
    from engine.engines.opa import ManagedOpaEngine

    engine = runtime.engine
    if settings.bundle_poll_s <= 0 or not isinstance(engine, ManagedOpaEngine):
        return None
    return BundleWatcher(
        engine,
        engine.source,
        interval_s=settings.bundle_poll_s,
        on_result=lambda ok: metrics.bundle_reloads.labels("ok" if ok else "refused").inc(),
    )


def close_state(closers: list[Any]) -> None:
    """Close what the app opened, newest first."""
    for closer in reversed(closers):
        try:
            closer.close()
        except Exception:  # noqa: BLE001 - keep closing the others
            _logger.exception("error while closing %r", closer)


def _optional_routers() -> list[APIRouter]:
    routers = []
    for name in OPTIONAL_ROUTERS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        routers.append(module.router)
    return routers


def create_app(
    settings: Settings,
    *,
    runtime: Runtime | None = None,
    decision_log: DecisionLog | None = None,
    approvals: ApprovalStore | None = None,
    tokens: TokenStore | None = None,
) -> FastAPI:
    """The service app. Its lifespan opens what was not passed in, and closes it."""
    metrics = ServiceMetrics.from_environment()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = await anyio.to_thread.run_sync(
            lambda: open_state(
                settings,
                metrics,
                runtime=runtime,
                decision_log=decision_log,
                approvals=approvals,
                tokens=tokens,
            )
        )
        app.state.releasegate = state
        if settings.gc_freeze:
            frozen = freeze_startup_heap()
            _logger.debug("garbage collector: %d startup objects frozen", frozen)
        try:
            yield
        finally:
            if settings.gc_freeze:
                thaw_heap()
            app.state.releasegate = None
            await anyio.to_thread.run_sync(close_state, state.closers)
            metrics.close()

    app = ServiceAPI(
        title="releasegate",
        version=__version__,
        description=_DESCRIPTION,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(
        ServiceMiddleware,
        max_body_bytes=settings.max_body_bytes,
        metrics=metrics,
        server_timing=settings.server_timing,
    )
    from engine.api.hot_routes import hot_routes
    from engine.api.routes import approvals as approval_routes
    from engine.api.routes import decisions, log, public

    # First in the router: the routes called at rate, without FastAPI's per-route work.
    app.router.routes[0:0] = hot_routes()
    for router in (decisions.router, log.router, approval_routes.router, public.router):
        app.include_router(router)
    for router in _optional_routers():
        app.include_router(router)
    if settings.bundle_dir is not None:
        from engine.api.bundle_server import bundle_router

        app.include_router(bundle_router(settings.bundle_dir))
    return app
