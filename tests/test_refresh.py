"""Refresh-ahead: one refresh per key at a time, failures logged, close waits."""

from __future__ import annotations

import threading

import pytest

from engine.refresh import RefreshAhead
from tests.engines.test_opa import _wait_for


def test_one_refresh_per_key_at_a_time() -> None:
    refresher = RefreshAhead("test")
    release = threading.Event()
    ran: list[str] = []

    def slow(name: str) -> None:
        release.wait(10)
        ran.append(name)

    assert refresher.schedule("a", lambda: slow("a1"))
    assert not refresher.schedule("a", lambda: slow("a2"))  # "a" is running
    assert refresher.schedule("b", lambda: slow("b1"))  # another key queues
    assert not refresher.idle()
    release.set()
    assert _wait_for(refresher.idle)
    assert ran == ["a1", "b1"]
    assert refresher.schedule("a", lambda: slow("a3"))  # done: may run again
    refresher.close()  # waits for it
    assert ran == ["a1", "b1", "a3"]
    assert not refresher.schedule("a", lambda: slow("a4"))  # closed


def test_a_failed_refresh_is_logged_and_releases_its_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    refresher = RefreshAhead("test")

    def fail() -> None:
        raise RuntimeError("database gone")

    assert refresher.schedule("a", fail)
    assert _wait_for(refresher.idle)
    assert "background refresh failed" in caplog.text and "database gone" in caplog.text
    assert refresher.schedule("a", lambda: None)
    refresher.close()
