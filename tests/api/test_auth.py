"""Tokens (stored hashed, CLI create/list/revoke) and the failed-attempt rate limit."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from engine.adapters.cli import main
from engine.auth import FailureLimiter
from engine.auth.sql import database_url
from engine.auth.tokens import TOKEN_PREFIX, TokenStore, hash_token
from tests.api.conftest import Service, ServiceFactory, dev_request
from tests.engines.test_opa import _wait_for


def test_tokens_are_stored_only_as_hashes(tmp_path: Path) -> None:
    store = TokenStore(database_url(tmp_path))
    token, info = store.create("ci-bot", ["ci", "auditor"])
    store.close()
    assert token.startswith(TOKEN_PREFIX) and len(token) == len(TOKEN_PREFIX) + 43
    db = sqlite3.connect(tmp_path / "log.db")
    rows = db.execute("SELECT token_hash, subject, roles, revoked FROM auth_tokens").fetchall()
    db.close()
    assert rows == [(hash_token(token), "ci-bot", '["auditor", "ci"]', None)]
    for path in tmp_path.iterdir():
        assert token.encode() not in path.read_bytes()
    assert info.token_id == hash_token(token)[:16]


def test_authenticate_rejects_unknown_malformed_and_revoked(tmp_path: Path) -> None:
    store = TokenStore(database_url(tmp_path))
    token, info = store.create("ci-bot", ["ci"])
    assert store.authenticate(token) is not None
    assert store.authenticate(token + "x") is None
    assert store.authenticate("Bearer " + token) is None
    assert store.authenticate(TOKEN_PREFIX + "a" * 500) is None
    store.revoke(info.token_id)
    assert store.authenticate(token) is None
    with pytest.raises(Exception, match="no such token"):
        store.revoke("0" * 16)
    store.close()


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_authenticated_tokens_are_cached_for_the_ttl_only(tmp_path: Path) -> None:
    """A revocation by another process (another store) shows once the TTL has passed; one
    through the same store at once. Unknown tokens are never cached."""
    clock = _Clock()
    service = TokenStore(database_url(tmp_path), cache_ttl_s=5, clock=clock)
    other = TokenStore(database_url(tmp_path))  # e.g. `releasegate token revoke`
    token, info = other.create("ci-bot", ["ci"])
    assert service.authenticate(token) == info
    other.revoke(info.token_id)
    clock.now += 4.9
    assert service.authenticate(token) == info  # still inside the TTL
    clock.now += 0.2
    assert service.authenticate(token) is None  # read again: revoked

    second, second_info = other.create("ci-bot-2", ["ci"])
    assert service.authenticate(second) == second_info
    service.revoke(second_info.token_id)
    assert service.authenticate(second) is None  # the same store forgets at once

    late = TOKEN_PREFIX + "b" * 43
    assert service.authenticate(late) is None
    service.close()
    other.close()


def test_a_token_in_use_is_read_again_before_it_expires(tmp_path: Path) -> None:
    """Refresh-ahead: in the second half of its lifetime a cached token is served and read
    again in the background; a revocation by another store still shows within the TTL."""
    clock = _Clock()
    service = TokenStore(database_url(tmp_path), cache_ttl_s=5, refresh_ahead=True, clock=clock)
    other = TokenStore(database_url(tmp_path))
    token, info = other.create("ci-bot", ["ci"])
    assert service.authenticate(token) == info
    clock.now += 2.0
    assert service.cached(token) == info  # first half: nothing read
    assert service._refresher is not None and service._refresher.idle()
    clock.now += 1.0
    assert service.cached(token) == info  # second half: served, and read again
    assert _wait_for(service._refresher.idle)
    clock.now += 4.0  # past the first expiry (5 s), within the refreshed one
    assert service.cached(token) == info  # its second half again: another read
    # That read must finish before the revocation, or it may find the token revoked
    # already and drop it before the next check (a race the test used to lose under load).
    assert _wait_for(service._refresher.idle)

    other.revoke(info.token_id)
    clock.now += 3.0
    assert service.cached(token) == info  # still inside the TTL; the read finds it revoked
    assert _wait_for(lambda: service.cached(token) is None)
    service.close()
    other.close()


def test_token_cli_create_list_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = str(tmp_path / "state")
    assert (
        main(["token", "create", "--state-dir", state, "--subject", "bob", "--role", "approver"])
        == 0
    )
    out = capsys.readouterr().out.splitlines()
    token = out[0]
    assert token.startswith(TOKEN_PREFIX) and "shown once" in out[1]
    assert main(["token", "list", "--state-dir", state, "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(t["subject"], t["roles"], t["revoked"]) for t in listed] == [
        ("bob", ["approver"], None)
    ]
    assert token not in json.dumps(listed)
    assert main(["token", "revoke", "--state-dir", state, listed[0]["token_id"]]) == 0
    capsys.readouterr()
    assert main(["token", "list", "--state-dir", state]) == 0
    assert "revoked" in capsys.readouterr().out
    assert main(["token", "create", "--state-dir", state, "--subject", "x", "--role", "root"]) == 2
    assert main(["token", "revoke", "--state-dir", state, "nope"]) == 2


def test_failed_attempts_are_rate_limited_per_address(make_service: ServiceFactory) -> None:
    service = make_service(auth_failure_limit=3, auth_failure_window_s=60)
    bad = {"Authorization": "Bearer " + TOKEN_PREFIX + "z" * 43}
    for _ in range(3):
        assert service.client.get("/v1/log/checkpoint", headers=bad).status_code == 401
    limited = service.client.get("/v1/log/checkpoint", headers=bad)
    assert limited.status_code == 429
    assert limited.json()["code"] == "rate_limited"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    # While blocked, even a valid token from that address is refused before it is checked.
    assert service.decide(dev_request()).status_code == 429
    # Public routes stay open.
    assert service.client.get("/healthz").status_code == 200
    metrics = service.client.get("/metrics").text
    assert "releasegate_auth_failures_total 3.0" in metrics


def test_missing_tokens_do_not_count_as_failures(make_service: ServiceFactory) -> None:
    service = make_service(auth_failure_limit=2)
    for _ in range(5):
        assert service.client.get("/v1/log/checkpoint").status_code == 401
    assert service.decide(dev_request()).status_code == 200


def test_failure_window_ages_out() -> None:
    now = [1000.0]
    limiter = FailureLimiter(limit=2, window_s=60, clock=lambda: now[0])
    limiter.failure("10.0.0.1")
    limiter.failure("10.0.0.1")
    assert limiter.retry_after("10.0.0.1") == 60
    assert limiter.retry_after("10.0.0.2") is None
    now[0] += 30
    assert limiter.retry_after("10.0.0.1") == 30
    now[0] += 30
    assert limiter.retry_after("10.0.0.1") is None


def test_decisions_record_the_token_subject_not_a_claimed_one(service: Service) -> None:
    body = dev_request()
    body["release"]["requested_by"] = "ci-pipeline-impersonated"
    decided = service.decide(body).json()
    record = service.client.get(
        f"/v1/decisions/{decided['decision_id']}", headers=service.headers("auditor")
    ).json()
    assert record["request"]["caller"] == "ci-pipeline"
    assert record["release"]["requested_by"] == "ci-pipeline-impersonated"
