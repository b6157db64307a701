"""The log's helper threads run as SCHED_BATCH: a waking one never preempts the event loop.

Each thread's policy is read back from the kernel (``sched_getscheduler`` of its native
id), on the log's real threads: the commit thread of appends awaited on an event loop,
the writer thread of blocking appends and the checkpoint thread.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import helper_threads
from engine.config import build_settings
from engine.errors import ConfigError
from engine.log.decision_log import DecisionLog
from engine.log.keystore import load_signing_key
from engine.log.store import SqlRecordStore
from engine.one_thread import OneThread
from tests.log.helpers import input_doc, make_decision

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="SCHED_BATCH is Linux's")


@pytest.fixture(autouse=True)
def _policy_restored() -> Iterator[None]:
    yield
    helper_threads.configure("batch")


def _policy_of(name_prefix: str) -> int:
    found = [t for t in threading.enumerate() if t.name.startswith(name_prefix)]
    assert found, f"no thread named {name_prefix}*"
    native = found[0].native_id
    assert native is not None
    return os.sched_getscheduler(native)


def _policy_in(one: OneThread) -> int:
    pool = one.executor()
    assert pool is not None
    return pool.submit(os.sched_getscheduler, 0).result(timeout=30)


def test_a_one_thread_runs_as_batch_by_default_and_as_started_under_normal() -> None:
    batch = OneThread("test-helper-batch")
    try:
        assert _policy_in(batch) == os.SCHED_BATCH
    finally:
        batch.close()
    helper_threads.configure("normal")
    normal = OneThread("test-helper-normal")
    try:
        assert _policy_in(normal) == os.SCHED_OTHER
    finally:
        normal.close()
    # The thread that called ``configure`` is not a helper: it keeps its own policy.
    assert os.sched_getscheduler(0) == os.SCHED_OTHER


def test_the_logs_commit_writer_and_checkpoint_threads_are_helpers(tmp_path: Path) -> None:
    signer, ring = load_signing_key(tmp_path / "state", create=True)
    store = SqlRecordStore(
        f"sqlite:///{tmp_path / 'state' / 'log.db'}", checkpoint_every=1, checkpoint_idle_s=3600
    )
    log = DecisionLog(store, signer, ring)
    try:
        log.append(make_decision(0), input_document=input_doc(0), caller="t", adapter="check")

        async def together() -> None:  # concurrent appends: a batch commits on the thread
            await asyncio.gather(
                *(
                    log.append_async(
                        make_decision(n), input_document=input_doc(n), caller="t", adapter="api"
                    )
                    for n in range(1, 9)
                )
            )

        asyncio.run(together())
        assert _policy_of("releasegate-log-writer") == os.SCHED_BATCH
        assert _policy_of("releasegate-log-commit") == os.SCHED_BATCH
        assert _policy_of("releasegate-log-checkpoint") == os.SCHED_BATCH
        assert sum(1 for _ in log.iter_records()) == 9
    finally:
        log.close()


def test_a_refused_policy_leaves_the_thread_as_it_started(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(pid: int, policy: int, param: os.sched_param) -> None:
        raise PermissionError(1, "Operation not permitted")  # as a seccomp profile would

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    result: list[tuple[bool, int]] = []

    def helper() -> None:
        result.append((helper_threads.schedule_as_helper(), os.sched_getscheduler(0)))

    thread = threading.Thread(target=helper)
    thread.start()
    thread.join(30)
    assert result == [(False, os.SCHED_OTHER)]


def test_the_setting_is_batch_by_default_and_checked() -> None:
    assert build_settings().helper_scheduling == "batch"
    assert build_settings(helper_scheduling="normal").helper_scheduling == "normal"
    with pytest.raises(ConfigError) as caught:
        build_settings(helper_scheduling="fifo")
    assert caught.value.errors[0].loc == "helper_scheduling"
