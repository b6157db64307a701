"""CPU placement of the service and its managed OPA (``engine/affinity.py``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.affinity import CpuPlan, pin_process, plan_for, usable_cpus
from engine.config import build_settings
from engine.errors import ConfigError


@pytest.mark.parametrize(
    ("cpus", "service", "opa"),
    [([0, 1], {0}, {1}), ([7, 2, 5], {2}, {5, 7}), ({3, 4, 5, 6}, {3}, {4, 5, 6})],
)
def test_the_service_takes_the_first_cpu_and_opa_the_rest(
    cpus: list[int], service: set[int], opa: set[int]
) -> None:
    assert plan_for(cpus) == CpuPlan(frozenset(service), frozenset(opa))


@pytest.mark.parametrize("cpus", [[], [3], [1, 1]])
def test_fewer_than_two_cpus_leave_nothing_to_split(cpus: list[int]) -> None:
    assert plan_for(cpus) is None


def test_the_plan_describes_itself() -> None:
    plan = CpuPlan(frozenset({0}), frozenset({3, 1, 2}))
    assert plan.describe() == "service on CPU 0, OPA on CPU 1,2,3"


def _masks(pid: int) -> list[set[int]]:
    return [os.sched_getaffinity(int(t)) for t in os.listdir(f"/proc/{pid}/task")]


def _threads_started(pid: int, count: int) -> None:
    deadline = time.monotonic() + 30  # a generous bound for a loaded machine, never asserted
    while len(os.listdir(f"/proc/{pid}/task")) < count and time.monotonic() < deadline:
        time.sleep(0.01)


def test_pin_process_restricts_every_thread_of_a_process(tmp_path: Path) -> None:
    usable = sorted(usable_cpus())  # with one CPU the mask cannot change, only be set
    code = (
        "import threading, time\n"
        "for _ in range(3): threading.Thread(target=time.sleep, args=(60,)).start()\n"
        "time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code])  # noqa: S603 - fixed argv
    try:
        _threads_started(child.pid, 4)
        assert _masks(child.pid) == [set(usable)] * 4
        target = frozenset(usable[-1:])
        assert pin_process(target, child.pid) == 4
        assert _masks(child.pid) == [set(target)] * 4
    finally:
        child.kill()
        child.wait()


def test_pin_process_defaults_to_this_process() -> None:
    # Pinning this process to what it may already use changes nothing and counts its threads.
    before = usable_cpus()
    assert pin_process(before) == len(os.listdir(f"/proc/{os.getpid()}/task"))
    assert usable_cpus() == before


@pytest.mark.parametrize(
    "other", [{"workers": 2}, {"opa_url": "http://127.0.0.1:8181"}], ids=["workers", "opa_url"]
)
def test_auto_is_refused_where_it_cannot_place_the_processes(other: dict[str, object]) -> None:
    with pytest.raises(ConfigError) as caught:
        build_settings(cpu_affinity="auto", **other)
    assert "cpu_affinity auto" in str(caught.value.errors)


def test_cpu_affinity_is_off_by_default_and_checked() -> None:
    assert build_settings().cpu_affinity == "off"
    assert build_settings(cpu_affinity="auto").cpu_affinity == "auto"
    with pytest.raises(ConfigError) as caught:
        build_settings(cpu_affinity="all")
    assert caught.value.errors[0].loc == "cpu_affinity"
