"""The prior-allow cache: hits are reused briefly, ages are rechecked, misses never cached."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine.adapters.admission_cache import CachedPriors
from engine.models.common import Verdict
from engine.models.decision import Decision, EngineInfo, PolicyInfo
from tests.engines.test_opa import _wait_for

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
DIGEST = "sha256:" + "a" * 64


def allow_at(when: datetime) -> Decision:
    return Decision(
        decision_id="prior", timestamp=when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        verdict=Verdict.ALLOW, release={}, artifact={"digest": DIGEST},
        policy=PolicyInfo(revision="r", digest="sha256:" + "0" * 64),
        engine=EngineInfo(name="opa", version="1"), input_digest="sha256:" + "0" * 64,
    )  # fmt: skip


class Log:
    """A fake decision log answering from a settable value, counting lookups."""

    def __init__(self, answer: Decision | None) -> None:
        self.answer = answer
        self.calls = 0

    def latest_allow_for(
        self, artifact_digest: str, environment: str, max_age_s: float, now: datetime
    ) -> Decision | None:
        self.calls += 1
        return self.answer


def test_hits_are_reused_within_the_ttl() -> None:
    log, t = Log(allow_at(NOW - timedelta(seconds=10))), [0.0]
    cache = CachedPriors(log, ttl_s=5, clock=lambda: t[0])
    assert cache.latest_allow_for(DIGEST, "prod", 3600, NOW) is log.answer
    t[0] = 4.9
    assert cache.latest_allow_for(DIGEST, "prod", 3600, NOW) is log.answer
    assert log.calls == 1
    t[0] = 5.0
    cache.latest_allow_for(DIGEST, "prod", 3600, NOW)
    assert log.calls == 2
    cache.latest_allow_for(DIGEST, "staging", 3600, NOW)  # another environment: own entry
    assert log.calls == 3


def test_age_is_rechecked_on_every_hit() -> None:
    log = Log(allow_at(NOW - timedelta(seconds=50)))
    cache = CachedPriors(log, ttl_s=60, clock=lambda: 0.0)
    assert cache.latest_allow_for(DIGEST, "prod", 60, NOW) is not None
    log.answer = None  # the log has nothing younger
    assert cache.latest_allow_for(DIGEST, "prod", 60, NOW + timedelta(seconds=20)) is None
    assert log.calls == 2


def test_misses_are_not_cached() -> None:
    log = Log(None)
    cache = CachedPriors(log, clock=lambda: 0.0)
    assert cache.latest_allow_for(DIGEST, "prod", 60, NOW) is None
    log.answer = allow_at(NOW)
    assert cache.latest_allow_for(DIGEST, "prod", 60, NOW) is log.answer
    assert log.calls == 2


def test_a_hit_past_its_refresh_point_is_served_and_read_again() -> None:
    log, t = Log(allow_at(NOW - timedelta(seconds=10))), [0.0]
    cache = CachedPriors(log, ttl_s=5, refresh_ahead=True, clock=lambda: t[0])
    assert cache.refresher is not None
    first = log.answer
    assert cache.latest_allow_for(DIGEST, "prod", 3600, NOW) is first
    t[0] = 2.0
    assert cache.latest_allow_for(DIGEST, "prod", 3600, NOW) is first
    assert cache.refresher.idle() and log.calls == 1
    newer = allow_at(NOW - timedelta(seconds=1))
    log.answer = newer
    t[0] = 3.0
    assert cache.latest_allow_for(DIGEST, "prod", 3600, NOW) is first  # served, not waited for
    assert _wait_for(cache.refresher.idle)
    assert log.calls == 2
    t[0] = 5.0  # past the first entry's expiry: the refreshed one (read at 3.0) answers
    assert cache.latest_allow_for(DIGEST, "prod", 3600, NOW) is newer
    assert log.calls == 2

    log.answer = None  # the log has no allow any more: the refresh drops the entry
    t[0] = 6.0
    assert cache.latest_allow_for(DIGEST, "prod", 3600, NOW) is newer
    assert _wait_for(cache.refresher.idle)
    assert cache.latest_allow_for(DIGEST, "prod", 3600, NOW) is None
    assert log.calls == 4
