"""How the runtime sizes its managed OPA (``engine.runtime``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.config import Settings
from engine.runtime import opa_gomaxprocs


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    return Settings(state_dir=tmp_path, **overrides)  # type: ignore[arg-type]


def test_one_go_processor_per_service_process_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GOMAXPROCS", raising=False)
    usable = len(os.sched_getaffinity(0))
    assert opa_gomaxprocs(_settings(tmp_path)) == 1
    assert opa_gomaxprocs(_settings(tmp_path, workers=2)) == min(2, usable)
    assert opa_gomaxprocs(_settings(tmp_path, workers=64)) == usable  # at most the CPUs
    # Under cpu_affinity auto, the CPUs OPA is placed on.
    assert opa_gomaxprocs(_settings(tmp_path, workers=3), frozenset({1, 2})) == 2


def test_an_explicit_setting_wins_and_the_environment_is_kept_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOMAXPROCS", "5")
    assert opa_gomaxprocs(_settings(tmp_path)) is None  # OPA inherits GOMAXPROCS=5
    assert opa_gomaxprocs(_settings(tmp_path, opa_gomaxprocs=3)) == 3
    monkeypatch.setenv("RELEASEGATE_OPA_GOMAXPROCS", "2")
    assert opa_gomaxprocs(Settings(state_dir=tmp_path)) == 2
