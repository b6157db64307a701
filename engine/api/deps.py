"""FastAPI dependencies: the app's state, authentication and role checks.

The trivial dependencies are ``async def``: FastAPI runs a sync dependency in its thread
pool, and each such hop cost more than the dependency itself (measured by the benchmarks,
``docs/benchmarks.md``). ``authenticate`` is async too: a token the store has cached is
checked on the event loop, and only a cache miss reads the database in the thread pool.

Route modules (this package's and the adapters') use the ``Annotated`` aliases::

    @router.post("/v1/admission")
    def admission(body: ..., principal: AdmissionPrincipal, pipeline: PipelineDep) -> ...

``require_role(*roles)`` builds the same kind of alias for any role set; the named aliases
(``CiPrincipal``, ``AdmissionPrincipal``, ...) exist because ``mypy --strict`` accepts only
literal ``Annotated[...]`` types in annotations. ``admin`` may call every route.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from engine.approvals import ApprovalStore
from engine.auth import FailureLimiter, Principal
from engine.auth.tokens import TokenStore
from engine.config import Settings
from engine.decision import DecisionPipeline
from engine.engines.base import PolicyEngine
from engine.log import DecisionLog

from .metrics import ServiceMetrics

DECISION_ID_HEADER = "X-Releasegate-Decision-Id"
CLIENT_CERT_SCOPE_KEY = "tls"
"""``scope["extensions"]["tls"]`` (ASGI TLS extension): ``client_cert_name`` is read from it."""


@dataclass
class AppState:
    """Everything a request may need; lives on ``app.state.releasegate`` while serving."""

    settings: Settings
    engine: PolicyEngine
    pipeline: DecisionPipeline
    decision_log: DecisionLog
    approvals: ApprovalStore
    tokens: TokenStore
    metrics: ServiceMetrics
    limiter: FailureLimiter
    closers: list[Any] = field(default_factory=list)
    bundle_watcher: Any = None
    """What reports bundle reloads (``.status``): the
    :class:`engine.engines.bundle_watch.BundleWatcher` of a managed OPA, or a worker's
    :class:`engine.engines.shared_opa.SharedOpaEngine`."""


async def get_app_state(request: Request) -> AppState:
    """The running app's state (503 before startup / after shutdown)."""
    state = getattr(request.app.state, "releasegate", None)
    if not isinstance(state, AppState):
        raise HTTPException(status_code=503, detail="the service is not running")
    return state


AppStateDep = Annotated[AppState, Depends(get_app_state)]


async def get_settings(state: AppStateDep) -> Settings:
    """The validated settings."""
    return state.settings


async def get_pipeline(state: AppStateDep) -> DecisionPipeline:
    """The decision pipeline; its recorder is the decision log (metered)."""
    return state.pipeline


async def get_decision_log(state: AppStateDep) -> DecisionLog:
    """The signed decision log."""
    return state.decision_log


async def get_approval_store(state: AppStateDep) -> ApprovalStore:
    """The append-only approval store."""
    return state.approvals


async def get_metrics(state: AppStateDep) -> ServiceMetrics:
    """This app's metrics."""
    return state.metrics


SettingsDep = Annotated[Settings, Depends(get_settings)]
PipelineDep = Annotated[DecisionPipeline, Depends(get_pipeline)]
DecisionLogDep = Annotated[DecisionLog, Depends(get_decision_log)]
ApprovalStoreDep = Annotated[ApprovalStore, Depends(get_approval_store)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="bearerAuth",
    description="A releasegate token (`releasegate token create`); roles come with the token.",
)


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(status_code=401, detail=message, headers={"WWW-Authenticate": "Bearer"})


def client_address(request: Request) -> str:
    """The peer address (the rate-limit key)."""
    return request.client.host if request.client else "unknown"


def _certificate_principal(request: Request, state: AppState) -> Principal | None:
    tls = request.scope.get("extensions", {}).get(CLIENT_CERT_SCOPE_KEY)
    name = tls.get("client_cert_common_name") if isinstance(tls, dict) else None
    if not isinstance(name, str) or not name:
        return None
    roles = state.settings.client_cert_roles.get(name)
    if not roles:
        return None
    return Principal(subject=name, roles=frozenset(roles), method="mtls")


async def authenticate(
    request: Request,
    state: AppStateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal:
    """The caller: a mapped client certificate, else a bearer token (401 / 429 otherwise)."""
    address = client_address(request)
    principal = _certificate_principal(request, state)
    if principal is None:
        # 1. An address over its failure budget is refused before its token is looked at.
        retry = state.limiter.retry_after(address)
        if retry is not None:
            raise HTTPException(
                status_code=429,
                detail="too many failed authentication attempts; try again later",
                headers={"Retry-After": str(retry)},
            )
        if credentials is None:
            raise _unauthorized("missing bearer token")
        # 2. Hash lookup; unknown, malformed and revoked tokens all fail the same way.
        token = credentials.credentials
        info = state.tokens.cached(token)
        if info is None:
            info = await run_in_threadpool(state.tokens.authenticate, token)
        if info is None:
            state.limiter.failure(address)
            state.metrics.auth_failures.inc()
            raise _unauthorized("invalid or revoked token")
        principal = Principal(subject=info.subject, roles=info.roles, method="token")
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(authenticate)]


class RoleChecker:
    """A dependency admitting callers holding one of ``roles`` (or ``admin``); 403 otherwise."""

    def __init__(self, *roles: str) -> None:
        self.roles = frozenset(roles)

    async def __call__(self, principal: PrincipalDep) -> Principal:
        """Return the caller when allowed."""
        if not principal.may(self.roles):
            wanted = " or ".join(sorted(self.roles))
            raise HTTPException(status_code=403, detail=f"this route needs the role {wanted}")
        return principal


def require_role(*roles: str) -> Any:
    """``Annotated[Principal, Depends(RoleChecker(*roles))]`` (see the module docstring)."""
    return Annotated[Principal, Depends(RoleChecker(*roles))]


CiPrincipal = Annotated[Principal, Depends(RoleChecker("ci"))]
AdmissionPrincipal = Annotated[Principal, Depends(RoleChecker("admission"))]
RolloutPrincipal = Annotated[Principal, Depends(RoleChecker("rollout"))]
ApproverPrincipal = Annotated[Principal, Depends(RoleChecker("approver"))]
AuditorPrincipal = Annotated[Principal, Depends(RoleChecker("auditor"))]
ApprovalReaderPrincipal = Annotated[Principal, Depends(RoleChecker("auditor", "approver"))]


def set_decision_id(response: Response, decision_id: str) -> None:
    """Every response about a decision carries its id (contract §7)."""
    response.headers[DECISION_ID_HEADER] = decision_id
