"""One managed OPA published for the workers of ``serve --workers``, against the real OPA.

The host side (:class:`OpaHost`) and the worker side (:class:`SharedOpaEngine`) run in one
process here; ``tests/api/test_serve_workers.py`` runs them as separate processes.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.decision import DecisionPipeline, evaluate
from engine.engines.opa import ManagedOpaEngine
from engine.engines.policy_source import PolicySource
from engine.engines.shared_opa import PUBLISHED_NAME, OpaHost, SharedOpaEngine
from engine.errors import EngineUnavailable
from engine.models.common import Verdict
from engine.models.inputs import InputDocumentV1
from tests.conftest import POLICIES
from tests.engines.test_opa import INPUT, _wait_for
from tests.test_decision import PROVIDERS


def _published_pid(host: OpaHost) -> int | None:
    try:
        pid = json.loads(host.published.read_bytes())["pid"]
    except (OSError, ValueError, KeyError):
        return None
    return int(pid)


def _host(tmp_path: Path, opa: Path, policies: Path = POLICIES) -> OpaHost:
    engine = ManagedOpaEngine(PolicySource(policies), opa=opa, timeout=2.0)
    return OpaHost(engine, tmp_path / PUBLISHED_NAME)


@pytest.fixture()
def host(tmp_path: Path, opa_binary: Path) -> Iterator[OpaHost]:
    opa_host = _host(tmp_path, opa_binary)
    yield opa_host
    opa_host.close()


def _changed_policies(tmp_path: Path) -> Path:
    changed = tmp_path / "changed"
    shutil.copytree(POLICIES, changed)
    (changed / "releasegate" / "extra.rego").write_text("package releasegate.extra\n\nx := 1\n")
    return changed


def test_a_worker_evaluates_on_the_published_opa(host: OpaHost) -> None:
    shared = SharedOpaEngine(host.published)
    try:
        result = shared.evaluate(INPUT)
        assert result.verdict is Verdict.ALLOW
        assert result.evaluated_policy == host.engine.policy
        assert asyncio.run(shared.evaluate_async(INPUT)).evaluated_policy == host.engine.policy
        assert shared.policy == host.engine.policy
        assert shared.info == host.engine.info
        assert shared.healthy
        assert shared.restarts == 0
    finally:
        shared.close()


def test_after_a_reload_results_name_the_bundle_that_decided(host: OpaHost, tmp_path: Path) -> None:
    shared = SharedOpaEngine(host.published)
    try:
        before = shared.evaluate(INPUT)
        host.engine.reload(PolicySource(_changed_policies(tmp_path)))
        after = shared.evaluate(INPUT)
        assert after.evaluated_policy == host.engine.policy
        assert before.evaluated_policy is not None and after.evaluated_policy is not None
        assert after.evaluated_policy.digest != before.evaluated_policy.digest
        assert shared.policy == host.engine.policy

        # The decision (and so its log record) carries the bundle of the result.
        pipeline = DecisionPipeline(engine=shared, providers=PROVIDERS)
        decision = pipeline.decide_document(InputDocumentV1.model_validate(INPUT))
        assert decision.policy == host.engine.policy
    finally:
        shared.close()


def test_a_restarted_opa_is_found_again_and_counted_once(host: OpaHost) -> None:
    workers = [SharedOpaEngine(host.published) for _ in range(3)]
    try:
        old = host.engine.pid
        os.kill(old, signal.SIGKILL)
        # The supervisor swaps in the new OPA, then publishes it: wait for the publication,
        # not only the process (a worker reading the file in between still sees the old one).
        assert _wait_for(lambda: _published_pid(host) not in (None, old) and host.engine.healthy)
        for worker in workers:
            assert worker.evaluate(INPUT).verdict is Verdict.ALLOW
        # Each worker exports its claimed restarts and /metrics sums them.
        assert sum(w.restarts for w in workers) == 1
        assert sum(w.restarts for w in workers) == 1  # reading again claims nothing new
    finally:
        for worker in workers:
            worker.close()


def test_a_worker_sees_a_refused_bundle(tmp_path: Path, opa_binary: Path) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(POLICIES, policies)
    engine = ManagedOpaEngine(PolicySource(policies), opa=opa_binary)
    host = OpaHost(engine, tmp_path / PUBLISHED_NAME, bundle_poll_s=3600)
    shared = SharedOpaEngine(host.published)
    try:
        assert shared.status.last_error is None
        (policies / "releasegate" / "broken.rego").write_text("package releasegate\n\nx := {\n")
        assert host.watcher is not None and host.watcher.check_now() is False
        status = shared.status
        assert status.refusals == 1 and status.last_error
        other = SharedOpaEngine(host.published)
        assert sorted([shared.bundle_reloads, other.bundle_reloads]) == [(0, 0), (0, 1)]
        other.close()
        assert shared.evaluate(INPUT).verdict is Verdict.ALLOW  # the old bundle serves on
    finally:
        shared.close()
        host.close()


def test_a_withdrawn_opa_fails_closed(tmp_path: Path, opa_binary: Path) -> None:
    host = _host(tmp_path, opa_binary)
    shared = SharedOpaEngine(host.published)
    try:
        assert shared.evaluate(INPUT).verdict is Verdict.ALLOW
        host.close()
        result = evaluate(shared, INPUT)
        assert result.verdict is Verdict.PAUSE
        assert [r.code for r in result.reasons] == ["engine_unavailable"]
        assert "not running" in result.reasons[0].message
        assert not shared.healthy
    finally:
        shared.close()


def test_no_published_opa_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(EngineUnavailable, match="not running"):
        SharedOpaEngine(tmp_path / PUBLISHED_NAME)
    garbled = tmp_path / PUBLISHED_NAME
    garbled.write_text('{"address": "unix:///x"}')
    with pytest.raises(EngineUnavailable, match="unreadable"):
        SharedOpaEngine(garbled)
