"""Prometheus metrics of one app, in its own ``CollectorRegistry`` (never the global one).

Decisions are counted where they are recorded (:class:`MeteredRecorder`), so every adapter's
decisions are counted the same way; engine latency is measured by :class:`MeteredEngine`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from engine.decision import DecisionRecorder
from engine.engines.base import PolicyEngine
from engine.models.decision import Decision, EngineInfo, PolicyInfo, PolicyResult

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _SourceCollector(Collector):
    """Reads counters owned by other objects (OPA restarts, verification cache) at scrape."""

    def __init__(self) -> None:
        self.restarts: Callable[[], int | None] = lambda: None
        self.cache: Callable[[], tuple[int, int, int] | None] = lambda: None

    def collect(self) -> Iterable[Metric]:
        restarts = self.restarts()
        if restarts is not None:
            c = CounterMetricFamily("releasegate_opa_restarts", "Managed OPA process restarts")
            c.add_metric([], restarts)
            yield c
        cache = self.cache()
        if cache is not None:
            hits, misses, size = cache
            h = CounterMetricFamily(
                "releasegate_verification_cache_hits", "Attestation verification cache hits"
            )
            h.add_metric([], hits)
            yield h
            m = CounterMetricFamily(
                "releasegate_verification_cache_misses", "Attestation verification cache misses"
            )
            m.add_metric([], misses)
            yield m
            s = GaugeMetricFamily(
                "releasegate_verification_cache_entries", "Attestation verification cache size"
            )
            s.add_metric([], size)
            yield s


class ServiceMetrics:
    """Every metric of one app; ``registry`` is what ``/metrics`` exposes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.decisions = Counter(
            "releasegate_decisions", "Recorded decisions by verdict", ["verdict"], registry=r
        )
        self.reasons = Counter(
            "releasegate_decision_reasons",
            "Reasons of recorded decisions by code and verdict",
            ["code", "verdict"],
            registry=r,
        )
        self.decision_seconds = Histogram(
            "releasegate_decision_duration_seconds",
            "From the decision time (input gathered from here) to the durable record",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.engine_seconds = Histogram(
            "releasegate_engine_evaluation_seconds",
            "Policy engine evaluation latency",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.append_seconds = Histogram(
            "releasegate_log_append_seconds",
            "Decision log append latency (until committed)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.append_failures = Counter(
            "releasegate_log_append_failures", "Decision log appends that failed", registry=r
        )
        self.in_flight = Gauge(
            "releasegate_http_requests_in_flight", "HTTP requests being served", registry=r
        )
        self.requests = Counter(
            "releasegate_http_requests",
            "HTTP requests by method, route and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.bundle_reloads = Counter(
            "releasegate_bundle_reloads",
            "Policy bundle reload attempts by result (ok, refused)",
            ["result"],
            registry=r,
        )
        self.auth_failures = Counter(
            "releasegate_auth_failures", "Failed authentication attempts", registry=r
        )
        self.sources = _SourceCollector()
        r.register(self.sources)

    def watch_engine(self, engine: object) -> None:
        """Export ``engine.restarts`` (a managed OPA) at every scrape."""
        if hasattr(engine, "restarts"):
            self.sources.restarts = lambda: int(engine.restarts)

    def watch_cache(self, verifier: object) -> None:
        """Export the provenance verifier's ``cache_stats`` at every scrape."""
        if hasattr(verifier, "cache_stats"):

            def read() -> tuple[int, int, int]:
                stats = verifier.cache_stats
                return int(stats.hits), int(stats.misses), int(stats.size)

            self.sources.cache = read


class MeteredEngine:
    """A ``PolicyEngine`` that times ``evaluate`` and otherwise delegates."""

    def __init__(self, inner: PolicyEngine, metrics: ServiceMetrics) -> None:
        self.inner = inner
        self._metrics = metrics

    def evaluate(self, input_document: Mapping[str, Any]) -> PolicyResult:
        """Evaluate and observe the latency (failures included)."""
        with self._metrics.engine_seconds.time():
            return self.inner.evaluate(input_document)

    @property
    def info(self) -> EngineInfo:
        """The inner engine's identity."""
        return self.inner.info

    @property
    def policy(self) -> PolicyInfo:
        """The inner engine's policy."""
        return self.inner.policy

    def close(self) -> None:
        """Close the inner engine."""
        self.inner.close()


class MeteredRecorder:
    """A ``DecisionRecorder`` that counts and times what the log records."""

    def __init__(
        self,
        inner: DecisionRecorder,
        metrics: ServiceMetrics,
        *,
        on_record: Callable[[Decision, str | None, str], None] | None = None,
    ) -> None:
        self.inner = inner
        self._metrics = metrics
        self._on_record = on_record

    def append(
        self,
        decision: Decision,
        *,
        input_document: dict[str, Any],
        caller: str | None,
        adapter: str,
        input_canonical: bytes | None = None,
    ) -> Decision:
        """Append through the inner recorder; count only decisions that were recorded."""
        started = time.perf_counter()
        try:
            recorded = self.inner.append(
                decision,
                input_document=input_document,
                caller=caller,
                adapter=adapter,
                input_canonical=input_canonical,
            )
        except BaseException:
            self._metrics.append_failures.inc()
            raise
        self._metrics.append_seconds.observe(time.perf_counter() - started)
        now_ns = input_document.get("now_ns")
        if isinstance(now_ns, int):
            self._metrics.decision_seconds.observe(max(0.0, (time.time_ns() - now_ns) / 1e9))
        self._metrics.decisions.labels(recorded.verdict.value).inc()
        for reason in recorded.reasons:
            self._metrics.reasons.labels(reason.code, reason.verdict.value).inc()
        if self._on_record is not None:
            self._on_record(recorded, caller, adapter)
        return recorded
