"""``POST /v1/admission[/{environment}]``: the Kubernetes validating admission webhook (role
``admission``).

The answer is always an ``admission.k8s.io/v1`` AdmissionReview with HTTP 200 — a denial is
``allowed: false`` with ``status.code`` 403 — except for a body that is not an
AdmissionReview with a readable ``request.uid`` (422, the one error shape). The webhook is
served over TLS by the service itself (``RELEASEGATE_TLS_CERT`` / ``RELEASEGATE_TLS_KEY``):
the API server only calls HTTPS webhooks.
"""

from __future__ import annotations

import weakref
from typing import Annotated, Any

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse

from engine.adapters.admission import AdmissionConfig, AdmissionController
from engine.adapters.admission_cache import CachedPriors
from engine.api.deps import (
    DECISION_ID_HEADER,
    AdmissionPrincipal,
    DecisionLogDep,
    PipelineDep,
    SettingsDep,
)
from engine.api.errors import error_responses
from engine.config import Settings
from engine.log import DecisionLog

router = APIRouter(tags=["admission"])

# One short-lived cache of verified prior allows per decision log (see admission_cache),
# read again in the background ahead of each hit's expiry.
_PRIORS: weakref.WeakKeyDictionary[DecisionLog, CachedPriors] = weakref.WeakKeyDictionary()


def cached_priors(log: DecisionLog) -> CachedPriors:
    """The prior-decision cache of this log."""
    cache = _PRIORS.get(log)
    if cache is None:
        cache = _PRIORS.setdefault(log, CachedPriors(log, refresh_ahead=True))
    return cache


_DOC = """Kubernetes `admission.k8s.io/v1` AdmissionReview for Pods and workload templates
(Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob, ReplicationController, Argo
Rollout). Images must be pinned by digest and have a recent signed CI `allow` for their
digest in this environment. The environment is the path segment, else the configured
namespace mapping, else the namespace name. Every admission is a logged decision; its id is
in `auditAnnotations` and the `X-Releasegate-Decision-Id` header."""


def admission_config(settings: Settings) -> AdmissionConfig:
    """The adapter's configuration from the service settings."""
    return AdmissionConfig(
        max_prior_age_s=float(settings.admission_max_prior_age_s),
        environments=dict(settings.admission_environments),
        default_environment=settings.admission_default_environment,
    )


async def admission_review(
    body: Any,
    *,
    principal: AdmissionPrincipal,
    pipeline: PipelineDep,
    log: DecisionLogDep,
    settings: SettingsDep,
    environment: str | None,
) -> JSONResponse:
    """Review ``body`` and answer with the AdmissionReview (both routes, and
    :mod:`engine.api.hot_routes`, which serves them ahead of these declarations)."""
    controller = AdmissionController(
        pipeline=pipeline, priors=cached_priors(log), config=admission_config(settings)
    )
    review, decision = await controller.review_async(
        body, caller=principal.subject, environment=environment, priors_may_block=log.may_block
    )
    headers = {DECISION_ID_HEADER: decision.decision_id} if decision is not None else None
    return JSONResponse(review, headers=headers)


@router.post(
    "/v1/admission",
    summary="Kubernetes validating admission webhook",
    description=_DOC,
    responses=error_responses(401, 403, 413, 422, 429, 503),
)
async def admission(
    body: Annotated[Any, Body()],
    principal: AdmissionPrincipal,
    pipeline: PipelineDep,
    log: DecisionLogDep,
    settings: SettingsDep,
) -> JSONResponse:
    """Decide an AdmissionReview in the namespace's mapped environment."""
    return await admission_review(
        body, principal=principal, pipeline=pipeline, log=log, settings=settings, environment=None
    )


@router.post(
    "/v1/admission/{environment}",
    summary="Kubernetes validating admission webhook for one environment",
    description=_DOC,
    responses=error_responses(401, 403, 413, 422, 429, 503),
)
async def admission_in_environment(
    environment: str,
    body: Annotated[Any, Body()],
    principal: AdmissionPrincipal,
    pipeline: PipelineDep,
    log: DecisionLogDep,
    settings: SettingsDep,
) -> JSONResponse:
    """Decide an AdmissionReview in the environment named by the path."""
    return await admission_review(
        body,
        principal=principal,
        pipeline=pipeline,
        log=log,
        settings=settings,
        environment=environment,
    )
