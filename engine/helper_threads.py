"""How the service's helper threads are scheduled (setting ``helper_scheduling``).

The service decides on one event loop thread. Its log commits on a helper thread
(:mod:`engine.log.loop_commit`), the log's writer and checkpoint threads wait for the
database beside it, and the caches refresh their entries ahead on one more
(:mod:`engine.refresh`). The commit thread wakes several times per commit: a commit to
run, then the interpreter lock to take back. Linux's fair scheduler lets a thread that
wakes preempt the thread running on its CPU, and that is often the event loop. The helper
then often finds the interpreter lock held by the loop it preempted and goes back to
sleep: two context switches and colder caches for nothing.

Under ``batch`` (the default) the helper threads run as ``SCHED_BATCH`` (``sched(7)``).
They get their fair share of CPU time as before, but a waking one never preempts a running
thread: it runs on an idle CPU or when the running thread's slice ends. In interleaved
A/Bs at 16 clients (docs/benchmarks.md, round 21) the event loop was preempted 2.7-3.1 →
1.6-2.2 times per decision, the service spent 5-10 % less CPU per decision and did 3-8 %
more decisions/s. A lone admission commits on the loop itself and is not affected. ``normal``
leaves the threads as they start (``SCHED_OTHER``).

A process needs no privilege to move its own threads between the two policies. Where the
call does not exist (not Linux) or is refused (a seccomp profile), the thread runs as it
started, and the refusal is logged at debug level. The policy is process-wide, like the
logging configuration: :func:`configure` sets it for the helper threads started after it.
"""

from __future__ import annotations

import logging
import os
from typing import Literal

HelperScheduling = Literal["batch", "normal"]

_logger = logging.getLogger(__name__)
_policy: HelperScheduling = "batch"


def configure(policy: HelperScheduling) -> None:
    """Set the policy of the helper threads started from now on."""
    global _policy
    _policy = policy


def schedule_as_helper() -> bool:
    """Give the calling thread the helper policy; call it first in a helper thread.

    True when the thread now runs as ``SCHED_BATCH``."""
    if _policy != "batch" or not hasattr(os, "SCHED_BATCH"):
        return False
    try:
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))  # 0: this thread
    except OSError as exc:
        _logger.debug("SCHED_BATCH refused for a helper thread: %s", exc)
        return False
    return True


__all__ = ["HelperScheduling", "configure", "schedule_as_helper"]
