"""PromQL for SLO facts, rendered from the per-service templates (pure, no I/O).

Each fact's query computes the reported number itself (a burn rate divides by the budget
inside PromQL), so running the recorded query at the recorded time reproduces the value.
"""

from __future__ import annotations

import re

from engine.errors import ConfigError
from engine.inputs.slo.config import SliConfig
from engine.models.inputs import ReleaseFacts

_RELEASE_FIELD = re.compile(r"\{(service|environment|release_id|version)\}")


def promql_string_content(value: str) -> str:
    """Escape ``value`` for use inside a double-quoted PromQL string literal."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")


def render_selector(template: str, release: ReleaseFacts) -> str:
    """Fill ``{service}``, ``{environment}``, ``{release_id}``, ``{version}`` in a selector.

    A release without a version gives an empty string for ``{version}``, which matches
    only series without that label: no data, never another cohort's data.
    """
    values = {
        "service": release.service,
        "environment": release.environment,
        "release_id": release.id,
        "version": release.version or "",
    }
    return _RELEASE_FIELD.sub(lambda m: promql_string_content(values[m.group(1)]), template)


def render(template: str, *, window: str, selector: str) -> str:
    """Replace the ``{window}`` and ``{selector}`` placeholders of an SLI expression."""
    return template.replace("{window}", window).replace("{selector}", selector)


def error_ratio(sli: SliConfig, *, window: str, selector: str = "") -> str:
    """The fraction of bad events over ``window`` (NaN when there were no events)."""
    if sli.error_ratio is not None:
        return render(sli.error_ratio, window=window, selector=selector)
    if sli.good is None or sli.total is None:
        raise ConfigError("an SLI needs `error_ratio`, or `good` and `total`")
    good = render(sli.good, window=window, selector=selector)
    total = render(sli.total, window=window, selector=selector)
    return f"1 - ({good}) / ({total})"


def _budget(objective: float) -> str:
    return f"(1 - {objective!r})"


def burn_rate(sli: SliConfig, objective: float, *, window: str) -> str:
    """How many times faster than sustainable the budget burns over ``window``."""
    return f"({error_ratio(sli, window=window)}) / {_budget(objective)}"


def budget_remaining(sli: SliConfig, objective: float, *, window: str) -> str:
    """The fraction of the error budget left over the SLO window (negative when overspent)."""
    return f"1 - ({error_ratio(sli, window=window)}) / {_budget(objective)}"


def requests(sli: SliConfig, *, window: str, selector: str) -> str:
    """The number of events over ``window`` in a cohort (the ``total`` expression)."""
    if sli.total is None:
        raise ConfigError("counting a cohort's requests needs `sli.total`")
    return render(sli.total, window=window, selector=selector)
