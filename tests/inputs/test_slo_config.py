"""SLO configuration loading and PromQL rendering (pure: no Prometheus needed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.errors import ConfigError
from engine.inputs.slo import DEFAULT_BURN_RATES, SloConfig, queries
from engine.models.inputs import ReleaseFacts

ASSET = Path(__file__).resolve().parents[1] / "assets" / "prometheus" / "slo.yaml"


def minimal(**service: Any) -> dict[str, Any]:
    svc: dict[str, Any] = {
        "sli": {"error_ratio": "sum(rate(e[{window}])) / sum(rate(r[{window}]))"},
        "objective": 0.999,
    }
    svc.update(service)
    return {"prometheus": {"url": "http://prom:9090"}, "services": {"payments": svc}}


def error_locs(data: object) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        SloConfig.from_dict(data)
    assert info.value.code == "config_error"
    return {e.loc: e.message for e in info.value.errors}


def test_asset_loads_from_yaml() -> None:
    config = SloConfig.from_file(ASSET)
    payments = config.services["payments"]
    assert payments.objective == 0.999 and payments.window == "30d"
    assert payments.cohorts is not None and payments.cohorts.min_requests == 500
    assert config.services["legacy"].environments == ["prod"]


def test_json_and_defaults(tmp_path: Path) -> None:
    path = tmp_path / "slo.json"
    path.write_text(json.dumps(minimal()), encoding="utf-8")
    svc = SloConfig.from_file(path).services["payments"]
    assert svc.window == "30d"
    assert svc.cohorts is None and svc.environments is None
    assert (svc.query_timeout_s, svc.cache_ttl_s) == (5.0, 15.0)
    assert [(b.severity, b.factor, b.long_window, b.short_window) for b in svc.burn_rates] == [
        ("fast", 14.4, "1h", "5m"),
        ("fast", 6, "6h", "30m"),
        ("slow", 3, "1d", "2h"),
        ("slow", 1, "3d", "6h"),
    ]
    assert tuple(svc.burn_rates) == DEFAULT_BURN_RATES


def test_burn_rates_are_configurable() -> None:
    pairs = [{"severity": "fast", "factor": 10, "long_window": "30m", "short_window": "2m"}]
    svc = SloConfig.from_dict(minimal(burn_rates=pairs)).services["payments"]
    assert [(b.factor, b.long_window) for b in svc.burn_rates] == [(10, "30m")]


@pytest.mark.parametrize(
    ("service", "loc", "fragment"),
    [
        ({"objective": 1.0}, "services.payments.objective", "less than 1"),
        ({"objective": 99.9}, "services.payments.objective", "less than 1"),
        ({"window": "30 days"}, "services.payments.window", "pattern"),
        ({"sli": {"good": "g[{window}]"}}, "services.payments.sli", "`good` needs `total`"),
        (
            {"sli": {"good": "g[{window}]", "total": "t[{window}]", "error_ratio": "e[{window}]"}},
            "services.payments.sli",
            "exactly one",
        ),
        ({"sli": {"error_ratio": "sum(rate(e[5m]))"}}, "services.payments.sli", "{window}"),
        (
            {"cohorts": {"canary": 'v="c"', "stable": 'v="s"'}},
            "services.payments",
            "needs `sli.total`",
        ),
        (
            {
                "sli": {"good": "g{a=1,{selector}}[{window}]", "total": "t[{window}]"},
                "cohorts": {"canary": 'v="c"', "stable": 'v="s"'},
            },
            "services.payments",
            "{selector}",
        ),
        (
            {
                "burn_rates": [
                    {"severity": "medium", "factor": 2, "long_window": "1h", "short_window": "5m"}
                ]
            },
            "services.payments.burn_rates.0.severity",
            "",
        ),
        ({"query_timeout_s": 0}, "services.payments.query_timeout_s", "greater than 0"),
        ({"unknown": 1}, "services.payments.unknown", "Extra inputs"),
    ],
)
def test_bad_config_names_the_field(service: dict[str, Any], loc: str, fragment: str) -> None:
    errors = error_locs(minimal(**service))
    assert loc in errors
    assert fragment in errors[loc]


def test_prometheus_url_must_be_http() -> None:
    data = minimal()
    data["prometheus"]["url"] = "prom:9090"
    assert "prometheus.url" in error_locs(data)


def test_unreadable_and_unparsable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read SLO config"):
        SloConfig.from_file(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("services: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid .yaml"):
        SloConfig.from_file(bad)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(yaml.safe_dump({"services": {}}), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        SloConfig.from_file(wrong)
    assert [e.loc for e in info.value.errors] == ["prometheus"]


# --- PromQL rendering ---

SLI = SloConfig.from_file(ASSET).services["payments"].sli


def test_good_total_renders_to_an_error_ratio() -> None:
    assert queries.error_ratio(SLI, window="5m") == (
        '1 - (sum(increase(http_requests_total{job="payments",code!~"5..",}[5m]))) '
        '/ (sum(increase(http_requests_total{job="payments",}[5m])))'
    )


def test_burn_rate_and_budget_divide_by_the_budget_in_promql() -> None:
    ratio = queries.error_ratio(SLI, window="1h")
    assert queries.burn_rate(SLI, 0.999, window="1h") == f"({ratio}) / (1 - 0.999)"
    assert queries.budget_remaining(SLI, 0.999, window="1h") == f"1 - ({ratio}) / (1 - 0.999)"


def test_cohort_selector_goes_inside_the_matchers() -> None:
    assert queries.requests(SLI, window="30m", selector='version="canary"') == (
        'sum(increase(http_requests_total{job="payments",version="canary"}[30m]))'
    )


def test_release_placeholders_are_escaped() -> None:
    release = ReleaseFacts.model_validate(
        {
            "id": 'evil"} or vector(1) #',
            "service": "pay\\ments",
            "environment": "prod",
            "stage": "canary",
        }
    )
    rendered = queries.render_selector(
        'release_id="{release_id}",service="{service}",version="{version}"', release
    )
    assert rendered == ('release_id="evil\\"} or vector(1) #",service="pay\\\\ments",version=""')
