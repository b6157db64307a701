"""SLO and error-budget facts from Prometheus: per-service config and the provider."""

from engine.inputs.slo.config import (
    DEFAULT_BURN_RATES,
    BurnRatePair,
    CohortConfig,
    PrometheusConfig,
    ServiceSloConfig,
    SliConfig,
    SloConfig,
)
from engine.inputs.slo.provider import SloProvider

__all__ = [
    "DEFAULT_BURN_RATES",
    "BurnRatePair",
    "CohortConfig",
    "PrometheusConfig",
    "ServiceSloConfig",
    "SliConfig",
    "SloConfig",
    "SloProvider",
]
