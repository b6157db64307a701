"""Public routes: ``/v1/keys``, ``/healthz``, ``/readyz``, ``/metrics`` (no token)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from engine.api.deps import AppStateDep, DecisionLogDep, MetricsDep
from engine.api.schemas import Health, KeysDocument, Readiness
from engine.errors import EngineError

router = APIRouter(tags=["public"])


@router.get("/v1/keys", response_model=KeysDocument, summary="Public keys by key id (PEM)")
def keys(log: DecisionLogDep) -> dict[str, Any]:
    """Every key that ever signed a record, so old records stay verifiable after rotation."""
    return log.keyring.to_json()


@router.get("/healthz", response_model=Health, summary="Liveness")
async def healthz() -> Health:
    """The process answers, on its event loop: as a plain ``def`` route, the probe would
    wait for a free worker thread and fail while slow work holds them all."""
    return Health(status="ok")


def _check(fn: Any) -> dict[str, Any]:
    try:
        detail = fn()
    except EngineError as exc:
        return {"ok": False, "detail": exc.message}
    except Exception as exc:  # noqa: BLE001 - readiness reports, never raises
        return {"ok": False, "detail": type(exc).__name__}
    return {"ok": True, "detail": detail}


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Readiness: engine answering, policy loaded, log writable",
    responses={503: {"model": Readiness, "description": "a check failed (see checks)"}},
)
def readyz(state: AppStateDep) -> JSONResponse:
    """200 when every check passes; 503 with the same body otherwise."""
    engine = state.engine
    policy = engine.policy

    def engine_check() -> str:
        healthy = getattr(engine, "healthy", None)
        if healthy is False:
            raise EngineError("the policy engine does not answer with its bundle loaded")
        return f"{engine.info.name} {engine.info.version} answering"

    def policy_check() -> str:
        detail = f"bundle revision {policy.revision} ({policy.digest}) loaded"
        watcher = state.bundle_watcher
        if watcher is not None and watcher.status.last_error:
            # The previous bundle keeps serving: ready, but the refusal is reported.
            detail += f"; a newer bundle was refused: {watcher.status.last_error}"
        return detail

    def log_check() -> str:
        size, _ = state.decision_log.store.head()
        state.approvals.check_writable()
        return f"writable, {size} records"

    checks = {
        "engine": _check(engine_check),
        "policy": _check(policy_check),
        "log": _check(log_check),
    }
    ok = all(c["ok"] for c in checks.values())
    body = {
        "status": "ready" if ok else "not_ready",
        "checks": checks,
        "policy": {"revision": policy.revision, "digest": policy.digest},
        "engine": {"name": engine.info.name, "version": engine.info.version},
    }
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics",
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "exposition format"}},
)
def metrics(metrics: MetricsDep) -> Response:
    """This app's metrics (every worker's, summed, under ``serve --workers``)."""
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
