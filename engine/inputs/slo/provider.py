"""Read SLO facts for a release from Prometheus (``prometheus-api-client``).

Facts, not conclusions: every number is a :class:`MetricFact` with its query, range,
evaluation time and the number of samples Prometheus answered with; Rego decides. All queries
of one ``collect`` are evaluated at one instant (the decision time), so they replay exactly.
No data and NaN are ``None``, never zero. A Prometheus that cannot be reached, times out or
answers an error makes the section ``unavailable``; an answer that is not a single number
(several series, a range vector, a string) makes it ``invalid``. ``collect`` never raises for
either: the policy turns both into ``slo_unavailable``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol, cast

import requests
from prometheus_api_client.exceptions import PrometheusApiClientException
from prometheus_api_client.prometheus_connect import PrometheusConnect
from urllib3.util.retry import Retry

from engine.errors import InputError
from engine.inputs.slo import queries
from engine.inputs.slo.config import ServiceSloConfig, SloConfig
from engine.models.common import SectionStatus
from engine.models.inputs import ReleaseFacts
from engine.models.slo import BurnRateFact, CanaryFact, MetricFact, SloSection

logger = logging.getLogger(__name__)

Clock = Callable[[], float]
"""Monotonic seconds; injectable so tests can step the cache TTL and the deadline."""

_MAX_DETAIL = 300


class _Unavailable(Exception):
    """Prometheus could not answer (connection, timeout, HTTP error)."""


class _Invalid(Exception):
    """Prometheus answered, but not with one number."""


def _number(text: object) -> float | None:
    """A sample value: ``None`` for NaN and +/-Inf (never zero)."""
    if not isinstance(text, str):
        raise _Invalid(f"sample value {text!r} is not a string")
    try:
        value = float(text)
    except ValueError as exc:
        raise _Invalid(f"sample value {text!r} is not a number") from exc
    return value if math.isfinite(value) else None


def _parse_instant_result(result: object) -> tuple[float | None, int]:
    """Turn a ``/api/v1/query`` result into ``(value, points)``.

    An empty vector is ``(None, 0)``; a scalar or a one-element vector is ``(value, 1)``
    with NaN/Inf read as ``None``. Anything else raises ``_Invalid``.
    """
    if not isinstance(result, list):
        raise _Invalid(f"unexpected result {type(result).__name__}")
    # A scalar result is [<unix time>, "<value>"]; a vector is a list of objects.
    if len(result) == 2 and isinstance(result[0], int | float) and isinstance(result[1], str):
        return _number(result[1]), 1
    if not result:
        return None, 0
    if len(result) > 1:
        raise _Invalid(f"the query returned {len(result)} series; aggregate it to one (sum)")
    item = result[0]
    sample = item.get("value") if isinstance(item, dict) else None
    if not isinstance(sample, list) or len(sample) != 2:
        raise _Invalid("the query did not return an instant vector or a scalar")
    return _number(sample[1]), 1


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _millis(moment: datetime) -> int:
    """Whole milliseconds since the epoch: Prometheus's own resolution, computed exactly."""
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def _rfc3339(ms: int) -> str:
    moment = _EPOCH + timedelta(milliseconds=ms)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _unix(ms: int) -> str:
    return f"{ms // 1000}.{ms % 1000:03d}"


@dataclass(frozen=True)
class _Cached:
    expires: float
    now: datetime
    section: SloSection


class SloProvider:
    """Collects the ``slo`` section of the input document for a release.

    Results with status ``ok`` are cached per (service, environment, release id) for the
    service's ``cache_ttl_s``; failures are not cached, so the next decision asks again.
    """

    def __init__(
        self,
        config: SloConfig,
        *,
        clock: Clock = time.monotonic,
        session: requests.Session | None = None,
    ) -> None:
        self._config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str, str], _Cached] = {}
        prom = config.prometheus
        # NOTE(slo): urllib3 retries are bounded by `retries` (default 0) and never sleep
        # long; every request carries its own timeout, and `deadline_s` bounds the sum.
        retry = Retry(
            total=prom.retries,
            backoff_factor=0.1,
            read=False,  # a query that timed out is not re-sent: it would likely time out again
            status_forcelist=(502, 503, 504),
            raise_on_status=False,
        )
        url = prom.url.rstrip("/")
        if session is None:
            self._client = PrometheusConnect(url=url, disable_ssl=prom.disable_ssl, retry=retry)
        else:
            self._client = PrometheusConnect(
                url=url, disable_ssl=prom.disable_ssl, retry=retry, session=session
            )

    def close(self) -> None:
        """Release the HTTP connection pool."""
        self._client.close()

    def __enter__(self) -> SloProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def collect(self, release: ReleaseFacts, *, now: datetime) -> SloSection:
        """Read the SLO facts for ``release``, every query evaluated at ``now``.

        Never raises for Prometheus problems; raises :class:`InputError` only for a naive
        ``now`` (a programming error: the evaluation time must be unambiguous).
        """
        if now.tzinfo is None or now.utcoffset() is None:
            raise InputError("now must be a timezone-aware datetime")
        service = self._config.services.get(release.service)
        if service is None or (
            service.environments is not None and release.environment not in service.environments
        ):
            return SloSection(
                status=SectionStatus.MISSING,
                message=f"no SLO configured for service {release.service!r} "
                f"in environment {release.environment!r}",
            )
        key = (release.service, release.environment, release.id)
        started = self._clock()
        with self._lock:
            hit = self._cache.get(key)
        # A hit must be fresh and evaluated near `now` (a decision about another time, such
        # as a re-run for an old timestamp, reads Prometheus again).
        if (
            hit is not None
            and started < hit.expires
            and abs((now - hit.now).total_seconds()) < service.cache_ttl_s
        ):
            return hit.section
        section = self._read(service, release, now=now, started=started)
        if section.status is SectionStatus.OK and service.cache_ttl_s > 0:
            with self._lock:
                self._cache = {k: v for k, v in self._cache.items() if started < v.expires}
                self._cache[key] = _Cached(started + service.cache_ttl_s, now, section)
        return section

    def _read(
        self, service: ServiceSloConfig, release: ReleaseFacts, *, now: datetime, started: float
    ) -> SloSection:
        reader = _Reader(
            self.query,
            self._clock,
            timeout=service.query_timeout_s,
            now=now,
            deadline=started + self._config.prometheus.deadline_s,
        )
        sli, objective = service.sli, service.objective
        try:
            # 1. Error budget left over the SLO window.
            budget = reader.fact(
                queries.budget_remaining(sli, objective, window=service.window), service.window
            )
            # 2. Every burn-rate pair, long and short window.
            burn_rates = [
                BurnRateFact(
                    severity=pair.severity,
                    factor=pair.factor,
                    long_window=pair.long_window,
                    short_window=pair.short_window,
                    long=reader.fact(
                        queries.burn_rate(sli, objective, window=pair.long_window),
                        pair.long_window,
                    ),
                    short=reader.fact(
                        queries.burn_rate(sli, objective, window=pair.short_window),
                        pair.short_window,
                    ),
                )
                for pair in service.burn_rates
            ]
            # 3. Canary vs stable cohorts: error ratios and request counts.
            canary = self._canary(reader, service, release)
        except _Unavailable as exc:
            logger.warning("SLO state for %s unavailable: %s", release.service, exc)
            return self._failed(SectionStatus.UNAVAILABLE, str(exc), service)
        except _Invalid as exc:
            logger.warning("SLO state for %s invalid: %s", release.service, exc)
            return self._failed(SectionStatus.INVALID, str(exc), service)
        return SloSection(
            status=SectionStatus.OK,
            objective=objective,
            window=service.window,
            source=self._config.prometheus.url,
            budget_remaining=budget,
            burn_rates=burn_rates,
            canary=canary,
        )

    def _canary(
        self, reader: _Reader, service: ServiceSloConfig, release: ReleaseFacts
    ) -> CanaryFact | None:
        cohorts = service.cohorts
        if cohorts is None:
            return None
        window, sli = cohorts.window, service.sli
        canary = queries.render_selector(cohorts.canary, release)
        stable = queries.render_selector(cohorts.stable, release)
        return CanaryFact(
            canary_error_ratio=reader.fact(
                queries.error_ratio(sli, window=window, selector=canary), window
            ),
            stable_error_ratio=reader.fact(
                queries.error_ratio(sli, window=window, selector=stable), window
            ),
            canary_requests=reader.fact(
                queries.requests(sli, window=window, selector=canary), window
            ),
            stable_requests=reader.fact(
                queries.requests(sli, window=window, selector=stable), window
            ),
            min_requests=cohorts.min_requests,
        )

    def _failed(self, status: SectionStatus, message: str, service: ServiceSloConfig) -> SloSection:
        return SloSection(
            status=status,
            message=message,
            objective=service.objective,
            window=service.window,
            source=self._config.prometheus.url,
        )

    def query(self, expr: str, *, at: str, timeout: float) -> object:
        """Run one instant query; translate every transport or HTTP failure to ``_Unavailable``."""
        url = self._config.prometheus.url
        params = {"time": at, "timeout": f"{max(1, int(timeout * 1000))}ms"}
        try:
            # NOTE(slo): prometheus-api-client 0.7.2 annotates `timeout` as int but hands it to
            # requests unchanged, which takes float seconds (connect and read timeouts).
            return self._client.custom_query(expr, params=params, timeout=cast(int, timeout))
        except requests.JSONDecodeError as exc:
            raise _Unavailable(f"Prometheus at {url} sent a malformed answer") from exc
        except requests.Timeout as exc:
            raise _Unavailable(f"Prometheus at {url} did not answer within {timeout:g}s") from exc
        except requests.RequestException as exc:
            raise _Unavailable(
                f"Prometheus at {url} is unreachable ({type(exc).__name__})"
            ) from exc
        except PrometheusApiClientException as exc:
            detail = str(exc)[:_MAX_DETAIL]
            raise _Unavailable(f"Prometheus at {url} answered an error: {detail}") from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise _Unavailable(f"Prometheus at {url} sent a malformed answer") from exc


class _Query(Protocol):
    def __call__(self, expr: str, *, at: str, timeout: float) -> object: ...


class _Reader:
    """Runs the queries of one ``collect`` at one instant, within one deadline."""

    def __init__(
        self,
        run: _Query,
        clock: Clock,
        *,
        timeout: float,
        now: datetime,
        deadline: float,
    ) -> None:
        self._run = run
        self._clock = clock
        self._timeout = timeout
        ms = _millis(now)
        self._at = _unix(ms)
        self._evaluated_at = _rfc3339(ms)
        self._deadline = deadline

    def fact(self, expr: str, window: str) -> MetricFact:
        """Run ``expr`` at the evaluation time and record it as a fact over ``window``."""
        remaining = self._deadline - self._clock()
        if remaining <= 0:
            raise _Unavailable("the deadline for reading SLO state passed before all queries ran")
        result = self._run(expr, at=self._at, timeout=min(self._timeout, remaining))
        try:
            value, points = _parse_instant_result(result)
        except _Invalid as exc:
            raise _Invalid(f"{exc}: {expr}") from exc
        return MetricFact(
            value=value,
            query=expr,
            range=window,
            evaluated_at=self._evaluated_at,
            points=points,
        )
