"""Prometheus metrics of one app, in its own ``CollectorRegistry`` (never the global one).

Decisions are counted where they are recorded (:class:`MeteredRecorder`), so every adapter's
decisions are counted the same way; engine latency is measured by :class:`MeteredEngine`.

With ``serve --workers N`` every worker process is its own app, and a scrape reaches one of
them: the serving command sets ``PROMETHEUS_MULTIPROC_DIR`` for its workers, the client
library then keeps every value in a file of that directory, and ``/metrics`` reports the sum
over the workers (prometheus_client's multiprocess mode; live gauges count live workers only).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from engine.api.afterwards import after_the_answer
from engine.api.timing import add_log, add_opa
from engine.decision import DecisionRecorder
from engine.engines.base import PolicyEngine
from engine.models.decision import Decision, EngineInfo, PolicyInfo, PolicyResult

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""Set (by ``serve --workers``) before a worker imports prometheus_client: values go to files."""

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _SourceCollector(Collector):
    """Reads counters owned by other objects (OPA restarts, verification cache) at scrape."""

    def __init__(self) -> None:
        self.restarts: Callable[[], int | None] = lambda: None
        self.cache: Callable[[], tuple[int, int, int] | None] = lambda: None
        self.reloads: Callable[[], tuple[int, int] | None] = lambda: None
        """A worker's claimed share of its supervisor's bundle reloads (ok, refused)."""

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


class _PublishedSources:
    """Multiprocess mode: a worker's OPA restarts and cache figures, copied to shared files.

    Those figures live in other objects (the engine, the verifier); a collector reading them
    at scrape time would only see the scraped worker. So each worker copies them into file
    backed metrics every ``interval_s`` and before it answers a scrape.
    """

    def __init__(
        self,
        sources: _SourceCollector,
        *,
        registry: CollectorRegistry,
        bundle_reloads: Counter,
        interval_s: float = 1.0,
    ) -> None:
        self.sources = sources
        self.bundle_reloads = bundle_reloads
        self._seen_reloads = (0, 0)
        self.restarts = Counter(
            "releasegate_opa_restarts", "Managed OPA process restarts", registry=registry
        )
        self.hits = Counter(
            "releasegate_verification_cache_hits",
            "Attestation verification cache hits",
            registry=registry,
        )
        self.misses = Counter(
            "releasegate_verification_cache_misses",
            "Attestation verification cache misses",
            registry=registry,
        )
        self.entries = Gauge(
            "releasegate_verification_cache_entries",
            "Attestation verification cache size",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self._seen = (0, 0, 0)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(interval_s,), name="releasegate-metrics", daemon=True
        )
        self._thread.start()

    def _run(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            self.refresh()

    def refresh(self) -> None:
        """Add what changed since the last copy (counters only grow)."""
        with self._lock:
            restarts = self.sources.restarts() or 0
            hits, misses, size = self.sources.cache() or (0, 0, 0)
            seen_restarts, seen_hits, seen_misses = self._seen
            self.restarts.inc(max(0, restarts - seen_restarts))
            self.hits.inc(max(0, hits - seen_hits))
            self.misses.inc(max(0, misses - seen_misses))
            self.entries.set(size)
            self._seen = (
                max(restarts, seen_restarts),
                max(hits, seen_hits),
                max(misses, seen_misses),
            )
            ok, refused = self.sources.reloads() or (0, 0)
            seen_ok, seen_refused = self._seen_reloads
            self.bundle_reloads.labels("ok").inc(max(0, ok - seen_ok))
            self.bundle_reloads.labels("refused").inc(max(0, refused - seen_refused))
            self._seen_reloads = (max(ok, seen_ok), max(refused, seen_refused))

    def close(self) -> None:
        """Stop the copying thread."""
        self._stop.set()
        self._thread.join(timeout=5)


class ServiceMetrics:
    """Every metric of one app; ``registry`` is what ``/metrics`` exposes."""

    def __init__(self, *, multiprocess_dir: str | None = None) -> None:
        self.multiprocess_dir = multiprocess_dir
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
            "releasegate_http_requests_in_flight",
            "HTTP requests being served",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.serving = 0
        """HTTP requests this process is serving now (``in_flight`` without the registry)."""
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
        self._published: _PublishedSources | None = None
        if multiprocess_dir is None:
            r.register(self.sources)
        else:
            self._published = _PublishedSources(
                self.sources, registry=r, bundle_reloads=self.bundle_reloads
            )

    @classmethod
    def from_environment(cls) -> ServiceMetrics:
        """Multiprocess mode when ``PROMETHEUS_MULTIPROC_DIR`` is set (``serve --workers``)."""
        return cls(multiprocess_dir=os.environ.get(MULTIPROCESS_ENV) or None)

    def exposition(self) -> bytes:
        """What ``/metrics`` returns: this app's registry, or the sum over every worker."""
        if self._published is None or self.multiprocess_dir is None:
            return generate_latest(self.registry)
        self._published.refresh()
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        return generate_latest(registry)

    def close(self) -> None:
        """Multiprocess mode: stop publishing and drop this worker's live gauges."""
        if self._published is not None and self.multiprocess_dir is not None:
            self._published.close()
            mark_process_dead(os.getpid(), self.multiprocess_dir)  # type: ignore[no-untyped-call]

    def watch_engine(self, engine: object) -> None:
        """Export ``engine.restarts`` (a managed OPA) at every scrape, and a worker's share of
        its supervisor's bundle reloads (``engine.bundle_reloads``, a shared OPA)."""
        if hasattr(engine, "restarts"):
            self.sources.restarts = lambda: int(engine.restarts)
        if hasattr(engine, "bundle_reloads"):
            self.sources.reloads = lambda: engine.bundle_reloads

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
        """Evaluate and observe the latency (failures included), for the metrics and the
        request's ``Server-Timing``."""
        started = time.perf_counter()
        try:
            return self.inner.evaluate(input_document)
        finally:
            self._observe(time.perf_counter() - started)

    async def evaluate_async(self, input_document: Mapping[str, Any]) -> PolicyResult:
        """The inner engine's evaluation from the event loop, timed the same way."""
        from engine.decision import evaluate_on_loop

        started = time.perf_counter()
        try:
            return await evaluate_on_loop(self.inner, input_document)
        finally:
            self._observe(time.perf_counter() - started)

    def _observe(self, seconds: float) -> None:
        self._metrics.engine_seconds.observe(seconds)
        add_opa(seconds)

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
        self._observe(recorded, started, input_document, caller, adapter)
        return recorded

    async def append_async(
        self,
        decision: Decision,
        *,
        input_document: dict[str, Any],
        caller: str | None,
        adapter: str,
        input_canonical: bytes | None = None,
    ) -> Decision:
        """``append`` awaited from the event loop, counted the same way."""
        from engine.decision import record_on_loop

        started = time.perf_counter()
        try:
            recorded = await record_on_loop(
                self.inner,
                decision,
                input_document=input_document,
                caller=caller,
                adapter=adapter,
                input_canonical=input_canonical,
            )
        except BaseException:
            self._metrics.append_failures.inc()
            raise
        self._observe(recorded, started, input_document, caller, adapter)
        return recorded

    def _observe(
        self,
        recorded: Decision,
        started: float,
        input_document: dict[str, Any],
        caller: str | None,
        adapter: str,
    ) -> None:
        seconds = time.perf_counter() - started
        add_log(seconds)
        now_ns = input_document.get("now_ns")
        decided_s = (time.time_ns() - now_ns) / 1e9 if isinstance(now_ns, int) else None
        # Counted and logged once the answer has left (engine.api.afterwards).
        after_the_answer(lambda: self._count(recorded, seconds, decided_s, caller, adapter))

    def _count(
        self,
        recorded: Decision,
        seconds: float,
        decided_s: float | None,
        caller: str | None,
        adapter: str,
    ) -> None:
        self._metrics.append_seconds.observe(seconds)
        if decided_s is not None:
            self._metrics.decision_seconds.observe(max(0.0, decided_s))
        self._metrics.decisions.labels(recorded.verdict.value).inc()
        for reason in recorded.reasons:
            self._metrics.reasons.labels(reason.code, reason.verdict.value).inc()
        if self._on_record is not None:
            self._on_record(recorded, caller, adapter)
