"""SLO and error-budget facts read from Prometheus: values with their provenance."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from engine.models.common import SectionStatus, StrictModel


class MetricFact(StrictModel):
    """One number read from Prometheus, with the query that produced it.

    ``value`` is ``None`` when the query returned no data or NaN/Inf: never read as zero.
    ``points`` is the number of samples in Prometheus's answer to the instant query: ``0`` is
    no data at all, ``1`` with ``value`` ``None`` is NaN (e.g. 0/0 when there was no traffic).
    ``range`` is the window the query looks back over and ``evaluated_at`` the RFC 3339
    evaluation time: running ``query`` at that time reproduces ``value``.
    """

    value: float | None
    query: str
    range: str | None = None
    evaluated_at: str
    points: int


class BurnRateFact(StrictModel):
    """A multi-window burn-rate pair (Google SRE Workbook)."""

    severity: Literal["fast", "slow"]
    factor: float
    long_window: str
    short_window: str
    long: MetricFact
    short: MetricFact


class CanaryFact(StrictModel):
    """Canary vs stable error ratio with traffic guards."""

    canary_error_ratio: MetricFact
    stable_error_ratio: MetricFact
    canary_requests: MetricFact
    stable_requests: MetricFact
    min_requests: float


class SloSection(StrictModel):
    """The ``slo`` section of the input document."""

    status: SectionStatus
    message: str | None = None
    objective: float | None = None
    window: str | None = None
    source: str | None = None
    """The Prometheus the facts were read from."""
    budget_remaining: MetricFact | None = None
    burn_rates: list[BurnRateFact] = Field(default_factory=list)
    canary: CanaryFact | None = None
