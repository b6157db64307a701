"""SloProvider against a real Prometheus holding backfilled series with hand-computed figures.

Every series below is a counter defined by its increase per minute, as a function of the
minute's age ``a`` (0 = the minute ending at the evaluation time ``T``). ``increase(x[w])`` at
``T`` is then the sum of the increments with ``a < w`` (in minutes), exactly; the expected
figures are worked out from those sums in the comments. Objective 99.9 %: budget 0.001.
"""

from __future__ import annotations

import json
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from engine.inputs.slo import SloConfig, SloProvider
from engine.models.common import SectionStatus
from engine.models.inputs import ReleaseFacts
from engine.models.slo import MetricFact, SloSection
from tests.inputs.prometheus_fixture import PrometheusServer, Series, prometheus_with

pytestmark = pytest.mark.prometheus

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "tests" / "assets" / "prometheus" / "slo.yaml"
T = datetime(2026, 10, 1, tzinfo=UTC)
END = 1790812800  # T as unix seconds
MINUTES = 31 * 1440
DIGEST = "sha256:" + "ab" * 32
REL = 1e-9  # float sums of fractional increments over 44 640 minutes


def _payments_stable_errors(a: int) -> float:
    return 8 if a < 60 else 4 if a < 120 else 2 if a < 1440 else 0.5


def _checkout_errors(a: int) -> float:
    return 12 if a < 60 else 0.3


SERIES = [
    # payments: stable serves 1000/min; canary serves 100/min for the last hour only.
    Series(
        'http_requests_total{job="payments",version="stable",code="200"}',
        lambda a: 1000 - _payments_stable_errors(a),
    ),
    Series(
        'http_requests_total{job="payments",version="stable",code="500"}',
        _payments_stable_errors,
    ),
    Series(
        'http_requests_total{job="payments",version="canary",code="200"}',
        lambda a: 97 if a < 60 else 0,
    ),
    Series(
        'http_requests_total{job="payments",version="canary",code="500"}',
        lambda a: 3 if a < 60 else 0,
    ),
    # checkout: 600/min; 2 % errors in the last hour, 0.05 % before.
    Series('http_requests_total{job="checkout",code="200"}', lambda a: 600 - _checkout_errors(a)),
    Series('http_requests_total{job="checkout",code="500"}', _checkout_errors),
    # legacy: 100/min at a steady 0.2 % errors.
    Series('http_requests_total{job="legacy",code="200"}', lambda a: 99.8),
    Series('http_requests_total{job="legacy",code="500"}', lambda a: 0.2),
    # quiet: stable 60/min at 0.05 % errors until two hours ago, then nothing; the canary
    # got 2/min (no errors) between 60 and 30 minutes ago.
    Series(
        'http_requests_total{job="quiet",version="stable",code="200"}',
        lambda a: 59.97 if a >= 120 else 0,
    ),
    Series(
        'http_requests_total{job="quiet",version="stable",code="500"}',
        lambda a: 0.03 if a >= 120 else 0,
    ),
    Series(
        'http_requests_total{job="quiet",version="canary",code="200"}',
        lambda a: 2 if 30 <= a < 60 else 0,
    ),
]


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    workdir = tmp_path_factory.mktemp("prometheus")
    with prometheus_with(SERIES, end=END, minutes=MINUTES, workdir=workdir) as server:
        yield server


def load_config(url: str) -> SloConfig:
    """The asset config, pointed at ``url``."""
    data = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    data["prometheus"]["url"] = url
    return SloConfig.from_dict(data)


@pytest.fixture(scope="module")
def provider(prometheus: PrometheusServer) -> Iterator[SloProvider]:
    with SloProvider(load_config(prometheus.url)) as p:
        yield p


def release(service: str, *, stage: str = "canary", environment: str = "prod") -> ReleaseFacts:
    return ReleaseFacts.model_validate(
        {
            "id": f"{service}-1.4.2",
            "service": service,
            "environment": environment,
            "stage": stage,
            "version": "1.4.2",
            "requested_by": "alice@example.com",
            "caller": "ci-bot",
        }
    )


def burn(section: SloSection) -> dict[str, float | None]:
    """Burn rate by window, checking that both members of a pair agree on shared windows."""
    seen: dict[str, float | None] = {}
    for pair in section.burn_rates:
        for window, fact in ((pair.long_window, pair.long), (pair.short_window, pair.short)):
            assert fact.range == window
            assert seen.setdefault(window, fact.value) == fact.value
    return seen


def approx(x: float) -> Any:
    return pytest.approx(x, rel=REL)


def test_payments_budget_and_burn_rates(provider: SloProvider) -> None:
    section = provider.collect(release("payments"), now=T)
    assert section.status is SectionStatus.OK
    assert (section.objective, section.window) == (0.999, "30d")
    # All traffic per minute: errors 8+3=11 of 1100 (a<60), 4 of 1000 (a<120),
    # 2 of 1000 (a<1440), 0.5 of 1000 (older).
    # 30d: errors 660 + 240 + 1320*2 + 41760*0.5 = 24420 of 66000 + 1000*43140 = 43206000.
    assert section.budget_remaining is not None
    assert section.budget_remaining.value == approx(1 - (24420 / 43206000) / 0.001)
    assert section.budget_remaining.value == approx(0.43480072212192755)
    assert section.budget_remaining.points == 1
    assert section.budget_remaining.range == "30d"
    assert section.budget_remaining.evaluated_at == "2026-10-01T00:00:00.000Z"
    assert burn(section) == {
        "5m": approx(55 / 5500 / 0.001),  # 10
        "1h": approx(660 / 66000 / 0.001),  # 10
        "30m": approx(330 / 33000 / 0.001),  # 10
        "6h": approx(1380 / 366000 / 0.001),  # 660 + 240 + 240*2 = 1380 → 3.7705
        "2h": approx(900 / 126000 / 0.001),  # 660 + 240 → 7.1429
        "1d": approx(3540 / 1446000 / 0.001),  # 900 + 1320*2 → 2.4481
        "3d": approx(4980 / 4326000 / 0.001),  # 3540 + 2880*0.5 → 1.1512
    }
    assert [(p.severity, p.factor, p.long_window, p.short_window) for p in section.burn_rates] == [
        ("fast", 14.4, "1h", "5m"),
        ("fast", 6, "6h", "30m"),
        ("slow", 3, "1d", "2h"),
        ("slow", 1, "3d", "6h"),
    ]


def test_payments_canary_vs_stable(provider: SloProvider) -> None:
    canary = provider.collect(release("payments"), now=T).canary
    assert canary is not None
    # Last 30 minutes: canary 100/min with 3 errors, stable 1000/min with 8 errors.
    assert canary.canary_requests.value == approx(3000)
    assert canary.stable_requests.value == approx(30000)
    assert canary.canary_error_ratio.value == approx(90 / 3000)  # 3 %
    assert canary.stable_error_ratio.value == approx(240 / 30000)  # 0.8 %
    assert canary.min_requests == 500
    assert 'version="canary"' in canary.canary_error_ratio.query
    assert canary.canary_error_ratio.range == "30m"


def test_error_ratio_form_and_fast_burn_figures(provider: SloProvider) -> None:
    section = provider.collect(release("checkout"), now=T)
    assert section.status is SectionStatus.OK
    assert section.canary is None
    # 600/min; errors 12/min (a<60), 0.3/min before.
    assert burn(section) == {
        "5m": approx(20),
        "1h": approx(20),
        "30m": approx(20),
        "6h": approx((720 + 300 * 0.3) / 216000 / 0.001),  # 3.75
        "2h": approx((720 + 60 * 0.3) / 72000 / 0.001),  # 10.25
        "1d": approx((720 + 1380 * 0.3) / 864000 / 0.001),  # 1.3125
        "3d": approx((720 + 4260 * 0.3) / 2592000 / 0.001),  # 0.7708
    }
    assert section.budget_remaining is not None
    assert section.budget_remaining.value == approx(1 - (720 + 43140 * 0.3) / 25920000 / 0.001)


def test_overspent_budget_is_negative(provider: SloProvider) -> None:
    section = provider.collect(release("legacy"), now=T)
    assert section.budget_remaining is not None
    assert section.budget_remaining.value == approx(-1.0)  # 0.2 % errors = 2x the budget
    assert list(burn(section).values()) == [approx(2.0)] * 7


def test_nan_is_none_and_never_zero(provider: SloProvider) -> None:
    section = provider.collect(release("quiet"), now=T)
    assert section.status is SectionStatus.OK
    rates = burn(section)
    # No requests at all in the last 30 minutes: 0/0 is NaN, reported as no value.
    assert rates["5m"] is None and rates["30m"] is None
    short = section.burn_rates[0].short
    assert (short.value, short.points) == (None, 1)
    # The last hour saw 60 canary requests without errors: a real zero.
    assert rates["1h"] == 0 and rates["2h"] == 0
    assert rates["6h"] == approx(240 * 0.03 / (240 * 60 + 60) / 0.001)
    canary = section.canary
    assert canary is not None
    assert canary.canary_requests.value == approx(60)
    assert canary.canary_error_ratio.value == 0
    assert canary.stable_requests.value == 0
    assert (canary.stable_error_ratio.value, canary.stable_error_ratio.points) == (None, 1)


def test_empty_result_is_none_with_no_points(provider: SloProvider) -> None:
    section = provider.collect(release("ghost"), now=T)
    assert section.status is SectionStatus.OK
    facts: list[MetricFact] = []
    assert section.budget_remaining is not None and section.canary is not None
    facts.append(section.budget_remaining)
    for pair in section.burn_rates:
        facts += [pair.long, pair.short]
    c = section.canary
    facts += [c.canary_error_ratio, c.stable_error_ratio, c.canary_requests, c.stable_requests]
    assert {(f.value, f.points) for f in facts} == {(None, 0)}
    assert 'release_id="ghost-1.4.2"' in c.canary_requests.query
    assert 'release_id!="ghost-1.4.2"' in c.stable_requests.query


def test_promql_error_makes_section_unavailable(provider: SloProvider) -> None:
    section = provider.collect(release("broken"), now=T)
    assert section.status is SectionStatus.UNAVAILABLE
    assert section.message is not None and "400" in section.message
    assert section.budget_remaining is None and section.burn_rates == []


def test_several_series_make_section_invalid(provider: SloProvider) -> None:
    section = provider.collect(release("unaggregated"), now=T)
    assert section.status is SectionStatus.INVALID
    assert section.message is not None and "returned 2 series" in section.message


def test_unconfigured_service_or_environment_is_missing(provider: SloProvider) -> None:
    assert provider.collect(release("nope"), now=T).status is SectionStatus.MISSING
    legacy_staging = provider.collect(release("legacy", environment="staging"), now=T)
    assert legacy_staging.status is SectionStatus.MISSING


def _query(url: str, expr: str, at: str) -> object:
    params = urllib.parse.urlencode({"query": expr, "time": at})
    with urllib.request.urlopen(f"{url}/api/v1/query?{params}", timeout=10) as r:  # noqa: S310
        body: dict[str, Any] = json.load(r)
    return body["data"]["result"]


def test_recorded_query_replays_to_the_recorded_value(
    provider: SloProvider, prometheus: PrometheusServer
) -> None:
    section = provider.collect(release("payments"), now=T)
    fact = section.burn_rates[1].long
    at = datetime.fromisoformat(fact.evaluated_at).timestamp()
    result = _query(prometheus.url, fact.query, f"{at:.3f}")
    assert isinstance(result, list)
    assert float(result[0]["value"][1]) == fact.value


def test_queries_evaluate_at_the_decision_time(provider: SloProvider) -> None:
    # One hour earlier the canary had not started: every window shifts by an hour.
    earlier = datetime(2026, 9, 30, 23, 0, tzinfo=UTC)
    section = provider.collect(release("payments", stage="deploy", environment="dev"), now=earlier)
    rates = burn(section)
    assert rates["5m"] == approx(4 / 1000 / 0.001)  # stable only, 4 errors/min
    assert rates["1h"] == approx(4 / 1000 / 0.001)
    assert {p.long.evaluated_at for p in section.burn_rates} == {"2026-09-30T23:00:00.000Z"}


# --- the facts through the real policy (OPA) ---

POLICIES = REPO / "policies" / "releasegate"
OPA = REPO / ".tools" / "bin" / "opa"


def findings(section: SloSection, rel: ReleaseFacts, records: list[dict[str, Any]]) -> set[str]:
    """Codes and verdicts from data.releasegate.slo.findings, evaluated by the OPA binary."""
    doc = {
        "now_ns": 1790812800 * 10**9,
        "release": rel.model_dump(mode="json"),
        "artifact": {"digest": DIGEST},
        "slo": section.model_dump(mode="json"),
        "approvals": {"status": "ok", "records": records},
    }
    proc = subprocess.run(  # noqa: S603 - fixed argv
        [
            str(OPA),
            "eval",
            "--format=json",
            "--stdin-input",
            *(f"--data={POLICIES / f}" for f in ("lib.rego", "approvals.rego", "slo.rego")),
            "data.releasegate.slo.findings",
        ],
        input=json.dumps(doc),
        capture_output=True,
        text=True,
        check=True,
    )
    value = json.loads(proc.stdout)["result"][0]["expressions"][0]["value"]
    return {f"{f['code']}:{f['verdict']}" for f in value}


@pytest.mark.opa
def test_policy_on_payments_canary(provider: SloProvider) -> None:
    rel = release("payments")
    section = provider.collect(rel, now=T)
    # 1x pair: 3d 1.15 and 6h 3.77 are both above 1; canary 3 % vs stable 0.8 %.
    assert findings(section, rel, []) == {"slo_slow_burn:pause", "canary_regression:rollback"}


@pytest.mark.opa
def test_policy_on_checkout_fast_burn_is_stage_aware(provider: SloProvider) -> None:
    canary = release("checkout")
    assert findings(provider.collect(canary, now=T), canary, []) == {"slo_fast_burn:rollback"}
    deploy = release("checkout", stage="deploy")
    assert findings(provider.collect(deploy, now=T), deploy, []) == {"slo_fast_burn:pause"}


@pytest.mark.opa
def test_policy_on_exhausted_budget_and_break_glass(provider: SloProvider) -> None:
    rel = release("legacy", stage="deploy")
    section = provider.collect(rel, now=T)
    assert findings(section, rel, []) == {"error_budget_exhausted:pause", "slo_slow_burn:pause"}
    glass = {
        "id": "bg-1",
        "kind": "break_glass",
        "approver": "bob@example.com",
        "approver_roles": ["approver"],
        "release_id": rel.id,
        "artifact_digest": DIGEST,
        "environment": "prod",
        "created_ns": 1790812700 * 10**9,
        "expires_ns": 1790816400 * 10**9,
    }
    assert findings(section, rel, [glass]) == {"slo_slow_burn:pause"}


@pytest.mark.opa
def test_policy_thin_canary_is_no_data(provider: SloProvider) -> None:
    rel = release("quiet")
    # Canary: 60 requests, stable: 0, both under 500; the NaN short windows cannot fire
    # because their long windows (0 and 0.5) are known and low.
    assert findings(provider.collect(rel, now=T), rel, []) == {"slo_no_data:pause"}


@pytest.mark.opa
def test_policy_empty_results_are_no_data_never_allow(provider: SloProvider) -> None:
    rel = release("ghost")
    assert findings(provider.collect(rel, now=T), rel, []) == {"slo_no_data:pause"}


@pytest.mark.opa
def test_policy_prometheus_error_is_unavailable(provider: SloProvider) -> None:
    rel = release("broken")
    assert findings(provider.collect(rel, now=T), rel, []) == {"slo_unavailable:pause"}


# --- caching ---


class CountingSession(requests.Session):
    """A real session that counts the HTTP requests it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        self.sent += 1
        return super().request(*args, **kwargs)


def test_results_are_cached_per_service_release_for_the_ttl(prometheus: PrometheusServer) -> None:
    session = CountingSession()
    now = [100.0]
    with SloProvider(load_config(prometheus.url), clock=lambda: now[0], session=session) as p:
        first = p.collect(release("checkout"), now=T)
        assert session.sent == 9  # budget + 4 pairs x 2 windows
        now[0] += 14.9  # the default TTL is 15 s
        assert p.collect(release("checkout", stage="promote"), now=T) is first
        assert session.sent == 9
        p.collect(release("legacy"), now=T)  # another service is read on its own
        assert session.sent == 18
        other = release("checkout").model_copy(update={"id": "checkout-1.4.3"})
        p.collect(other, now=T)  # and so is another release of the same service
        assert session.sent == 27
        now[0] += 0.1  # the TTL has passed
        again = p.collect(release("checkout"), now=T)
        assert session.sent == 36
        assert again == first and again is not first
        later = datetime(2026, 10, 1, 1, tzinfo=UTC)
        p.collect(release("checkout"), now=later)  # a decision about another time reads anew
        assert session.sent == 45


def test_release_values_cannot_inject_promql(provider: SloProvider) -> None:
    # ghost's cohorts select release_id="{release_id}": a crafted id must stay a string.
    rel = release("ghost").model_copy(update={"id": 'x"} or vector(1) or x{a="'})
    section = provider.collect(rel, now=T)
    assert section.status is SectionStatus.OK
    assert section.canary is not None
    assert (section.canary.canary_requests.value, section.canary.canary_requests.points) == (
        None,
        0,
    )
