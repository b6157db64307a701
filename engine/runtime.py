"""Wires settings into a running pipeline: engine, providers and (optionally) the log."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from engine.config import Settings
from engine.decision import DecisionPipeline, DecisionRecorder
from engine.engines.base import PolicyEngine
from engine.engines.opa import ManagedOpaEngine, RemoteOpaEngine, find_opa
from engine.engines.policy_source import policy_info
from engine.inputs.base import (
    ApprovalProvider,
    FactProviders,
    NoApprovalStore,
    NoSloConfigured,
    SloStateProvider,
)


def build_engine(settings: Settings, *, opa_cpus: frozenset[int] | None = None) -> PolicyEngine:
    """A managed OPA (on ``opa_cpus`` when given), the OPA of a ``serve --workers``
    supervisor, or the configured remote OPA (sidecar)."""
    if settings.opa_shared is not None:
        from engine.engines.shared_opa import SharedOpaEngine

        return SharedOpaEngine(settings.opa_shared, timeout=settings.eval_timeout_s)
    source = settings.policy_source()
    if settings.opa_url:
        return RemoteOpaEngine(
            settings.opa_url, policy=policy_info(source.path), timeout=settings.eval_timeout_s
        )
    return managed_engine(settings, cpus=opa_cpus)


def managed_engine(settings: Settings, *, cpus: frozenset[int] | None = None) -> ManagedOpaEngine:
    """The managed OPA these settings describe (bundle, binary, tuning)."""
    return ManagedOpaEngine(
        settings.policy_source(),
        opa=find_opa(settings.opa),
        timeout=settings.eval_timeout_s,
        gogc=settings.opa_gogc,
        gomaxprocs=opa_gomaxprocs(settings, cpus),
        read_optimized_store=settings.opa_store_read_optimized,
        cpus=cpus,
    )


def opa_gomaxprocs(settings: Settings, cpus: frozenset[int] | None = None) -> int | None:
    """Go processors for the managed OPA: the setting, else one per service process that
    calls it, at most the CPUs OPA may run on (``cpus``, else this process's); None when
    ``GOMAXPROCS`` is in the environment and the setting is left at 0."""
    if settings.opa_gomaxprocs:
        return settings.opa_gomaxprocs
    if "GOMAXPROCS" in os.environ:
        return None
    usable = len(cpus) if cpus else len(os.sched_getaffinity(0))
    return max(1, min(settings.workers, usable))


def build_slo_provider(settings: Settings) -> SloStateProvider:
    """Prometheus-backed SLO state when configured (``slo_config``), else ``missing``."""
    if settings.slo_config is None:
        return NoSloConfigured()
    from engine.inputs.providers import PrometheusSlo
    from engine.inputs.slo import SloConfig, SloProvider

    return PrometheusSlo(SloProvider(SloConfig.from_file(settings.slo_config)))


def build_providers(
    settings: Settings, *, approvals: ApprovalProvider | None = None
) -> FactProviders:
    """The production providers for these settings."""
    from engine.inputs.provenance import ProvenanceVerifier
    from engine.inputs.providers import ScanReports, SigstoreProvenance

    verifier = ProvenanceVerifier.from_settings(
        trusted_root_path=settings.trusted_root,
        public_keys=settings.attestation_keys or None,
        cache_size=settings.verification_cache_size,
    )
    return FactProviders(
        provenance=SigstoreProvenance(verifier),
        vulnerabilities=ScanReports(),
        slo=build_slo_provider(settings),
        approvals=approvals or NoApprovalStore(),
    )


@dataclass
class Runtime:
    """A running pipeline and what must be closed with it."""

    settings: Settings
    engine: PolicyEngine
    pipeline: DecisionPipeline
    closers: list[Any] = field(default_factory=list)

    def close(self) -> None:
        """Stop OPA and close the log."""
        for closer in reversed(self.closers):
            closer.close()
        self.engine.close()


def open_runtime(
    settings: Settings,
    *,
    recorder: DecisionRecorder | None = None,
    approvals: ApprovalProvider | None = None,
    opa_cpus: frozenset[int] | None = None,
) -> Runtime:
    """Start the engine and assemble the pipeline."""
    engine = build_engine(settings, opa_cpus=opa_cpus)
    try:
        providers = build_providers(settings, approvals=approvals)
    except BaseException:
        engine.close()
        raise
    pipeline = DecisionPipeline(engine=engine, providers=providers, recorder=recorder)
    return Runtime(settings=settings, engine=engine, pipeline=pipeline)


def open_local_runtime(settings: Settings) -> Runtime:
    """The runtime of ``check --local``: managed OPA, the state directory's signed log.

    ``check --local`` records its decision like the service does (no verdict without a
    record), so the admission webhook of an embedded deployment can reuse it.
    """
    from engine.log import open_decision_log

    log = open_decision_log(settings.state_dir, database_url=settings.database_url)
    try:
        runtime = open_runtime(settings, recorder=log)
    except BaseException:
        log.close()
        raise
    runtime.closers.append(log)
    return runtime
