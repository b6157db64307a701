"""Per-service SLO configuration: the SLI as PromQL, objective, window, cohorts, burn rates.

Loaded from YAML or JSON with :meth:`SloConfig.from_file`. See ``docs/slo.md`` for a worked
example. Every PromQL expression is a template with these placeholders, replaced verbatim
(PromQL's own braces are left alone):

``{window}``
    the range of the range vector selector, e.g. ``5m`` or ``30d``;
``{selector}``
    extra label matchers for a cohort (``version="canary"``), or nothing for all traffic;
    write it last inside a matcher list followed by nothing: ``{job="payments",{selector}}``
    (PromQL allows the trailing comma that is left when it is empty).

Cohort selectors may themselves use ``{service}``, ``{environment}``, ``{release_id}`` and
``{version}``, replaced by the release's values escaped for a PromQL string literal.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal, Self

import yaml
from pydantic import Field, StringConstraints, ValidationError, model_validator

from engine.errors import ConfigError, FieldError
from engine.models.common import StrictModel

Duration = Annotated[str, StringConstraints(pattern=r"^([0-9]+(ms|s|m|h|d|w|y))+$")]
"""A Prometheus duration such as ``5m``, ``1h30m`` or ``30d``."""

PromQL = Annotated[str, StringConstraints(min_length=1, max_length=8192)]


class BurnRatePair(StrictModel):
    """One multi-window burn-rate alert condition: both windows above ``factor``."""

    severity: Literal["fast", "slow"]
    factor: float = Field(gt=0)
    long_window: Duration
    short_window: Duration


DEFAULT_BURN_RATES: tuple[BurnRatePair, ...] = (
    BurnRatePair(severity="fast", factor=14.4, long_window="1h", short_window="5m"),
    BurnRatePair(severity="fast", factor=6, long_window="6h", short_window="30m"),
    BurnRatePair(severity="slow", factor=3, long_window="1d", short_window="2h"),
    BurnRatePair(severity="slow", factor=1, long_window="3d", short_window="6h"),
)
"""The Google SRE Workbook pairs (chapter "Alerting on SLOs", multiwindow, multi-burn-rate)."""


class SliConfig(StrictModel):
    """The service level indicator, as ``good``/``total`` counts or as an error ratio.

    ``total`` counts all events over ``{window}`` (use ``increase``/``sum(increase(...))``):
    it is also the request count of a cohort, checked against ``min_requests``.
    """

    good: PromQL | None = None
    total: PromQL | None = None
    error_ratio: PromQL | None = None

    @model_validator(mode="after")
    def _one_form(self) -> Self:
        if (self.good is None) == (self.error_ratio is None):
            raise ValueError("give exactly one of `good` (with `total`) or `error_ratio`")
        if self.good is not None and self.total is None:
            raise ValueError("`good` needs `total`")
        for name in ("good", "total", "error_ratio"):
            expr = getattr(self, name)
            if expr is not None and "{window}" not in expr:
                raise ValueError(f"`{name}` must contain the {{window}} placeholder")
        return self

    def expressions(self) -> list[str]:
        """The configured expressions, for placeholder checks."""
        return [e for e in (self.good, self.total, self.error_ratio) if e is not None]


class CohortConfig(StrictModel):
    """Label matchers that split traffic into canary and stable, and the traffic guard."""

    canary: str = Field(min_length=1, examples=['version="canary"'])
    stable: str = Field(min_length=1, examples=['version="stable"'])
    window: Duration = "30m"
    min_requests: float = Field(default=100, ge=0)


class ServiceSloConfig(StrictModel):
    """The SLO of one service."""

    sli: SliConfig
    objective: float = Field(gt=0, lt=1)
    window: Duration = "30d"
    burn_rates: list[BurnRatePair] = Field(default_factory=lambda: list(DEFAULT_BURN_RATES))
    cohorts: CohortConfig | None = None
    environments: list[str] | None = None
    """Environments this SLO describes; ``None`` means every environment."""
    query_timeout_s: float = Field(default=5.0, gt=0, le=120)
    cache_ttl_s: float = Field(default=15.0, ge=0, le=3600)

    @model_validator(mode="after")
    def _cohorts_need_selectors(self) -> Self:
        if self.cohorts is None:
            return self
        if self.sli.total is None:
            raise ValueError("`cohorts` needs `sli.total` to count each cohort's requests")
        for expr in self.sli.expressions():
            if "{selector}" not in expr:
                raise ValueError("with `cohorts`, every SLI expression needs {selector}")
        return self


class PrometheusConfig(StrictModel):
    """Where and how to query Prometheus."""

    url: Annotated[str, StringConstraints(pattern=r"^https?://")]
    disable_ssl: bool = False
    deadline_s: float = Field(default=15.0, gt=0, le=300)
    """Upper bound on the time one ``collect`` spends querying, over all its queries."""
    retries: int = Field(default=0, ge=0, le=3)


class SloConfig(StrictModel):
    """All SLO configuration: one Prometheus and a map of service name to SLO."""

    prometheus: PrometheusConfig
    services: dict[str, ServiceSloConfig] = Field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: object, *, source: str = "SLO config") -> SloConfig:
        """Validate a parsed document; raise :class:`ConfigError` naming each bad field."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            errors = [
                FieldError(".".join(str(p) for p in e["loc"]) or "(root)", e["msg"])
                for e in exc.errors()
            ]
            raise ConfigError(f"{source} is invalid", errors=errors) from exc

    @classmethod
    def from_file(cls, path: str | Path) -> SloConfig:
        """Load from a ``.yaml``/``.yml`` or ``.json`` file."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read SLO config {p}: {exc.strerror}") from exc
        try:
            data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as exc:
            raise ConfigError(f"SLO config {p} is not valid {p.suffix or 'YAML'}: {exc}") from exc
        return cls.from_dict(data, source=f"SLO config {p}")
