"""CPU affinity of the embedded service and its managed OPA (setting ``cpu_affinity``).

With ``cpu_affinity = "auto"``, ``releasegate serve`` (one process) keeps every thread of
its own process on the first CPU it may use and starts its managed OPA on the others, the
way nginx's ``worker_cpu_affinity`` or HAProxy's ``cpu-map`` place an event-loop server.
The service runs Python under one interpreter lock and uses about one CPU; its log writer
thread then shares that CPU's caches with the event loop, and OPA's threads stay on the
other CPUs instead of being moved between them by the scheduler (docs/benchmarks.md,
round 7, 2 vCPUs: +12 to +19 % decisions/s and about 10 ms less p99 while the host was
slow, 2-5 % less while it was fast).

Off by default: a host whose CPUs are shared with other pinned work should place processes
itself. Linux only (``sched_setaffinity``); with fewer than two usable CPUs there is
nothing to split.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class CpuPlan:
    """Which CPUs the service's threads and its managed OPA may run on."""

    service: frozenset[int]
    opa: frozenset[int]

    def describe(self) -> str:
        """``service on CPU 0, OPA on CPU 1``, as the start-up summary prints it."""
        return f"service on CPU {_cpu_list(self.service)}, OPA on CPU {_cpu_list(self.opa)}"


def _cpu_list(cpus: Iterable[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus))


def usable_cpus() -> frozenset[int]:
    """The CPUs this process may run on (its affinity mask: cgroup cpuset, ``taskset``)."""
    return frozenset(os.sched_getaffinity(0))


def plan_for(cpus: Iterable[int]) -> CpuPlan | None:
    """The first CPU for the service, the rest for OPA; None with fewer than two CPUs."""
    ordered = sorted(set(cpus))
    if len(ordered) < 2:
        return None
    return CpuPlan(service=frozenset(ordered[:1]), opa=frozenset(ordered[1:]))


def pin_process(cpus: frozenset[int], pid: int | None = None) -> int:
    """Restrict every thread of process ``pid`` (default: this one) to ``cpus``.

    A thread's mask is its own; threads started later inherit their creator's. The thread
    list is read until a pass finds none it has not pinned, so a thread started meanwhile is
    not missed. Returns how many threads were pinned; a thread that exits meanwhile is
    skipped.
    """
    task_dir = f"/proc/{os.getpid() if pid is None else pid}/task"
    pinned: set[int] = set()
    while True:
        fresh = {int(t) for t in os.listdir(task_dir)} - pinned
        if not fresh:
            return len(pinned)
        for tid in fresh:
            try:
                os.sched_setaffinity(tid, cpus)
            except ProcessLookupError:
                pass
            pinned.add(tid)
