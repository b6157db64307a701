"""Work a request owes once its answer has left: its decision's log line and metrics.

A decision is durably recorded and signed before it is returned (principle 4); its line on
the decision log stream and the Prometheus counters of its verdict and reasons are not part
of that promise. The service's middleware opens a list per request
(:class:`AnswerFirst`); :func:`after_the_answer` adds to it, and the middleware runs the
list after the response's last ``send``, next to the access line. The coalescing protocol
writes a complete response at once (``engine.api.coalesce``), so that work no longer sits
between the record's commit and the answer's first byte. Nothing is dropped: the list runs
in the same task, whether the request ended in an answer or an error, and before the ASGI
call returns (a test client sees the lines and counters when its call returns).

Outside a request (``check --local``, replay, a recorder used on its own) the work runs at
once. A context variable follows the request into a worker thread (anyio copies the
context) and the list is shared, so work added there runs afterwards too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextvars import ContextVar

_logger = logging.getLogger(__name__)

_pending: ContextVar[list[Callable[[], None]] | None] = ContextVar(
    "releasegate_after_the_answer", default=None
)


def after_the_answer(work: Callable[[], None]) -> None:
    """Run ``work`` once the current request's answer has left; at once outside a request."""
    pending = _pending.get()
    if pending is None:
        work()
    else:
        pending.append(work)


class AnswerFirst:
    """The work one request leaves for after its answer (the middleware opens one per request)."""

    __slots__ = ("_pending", "_token")

    def __init__(self) -> None:
        self._pending: list[Callable[[], None]] = []
        self._token = _pending.set(self._pending)

    def finish(self) -> None:
        """Stop collecting and run what was collected, in order. A failing item is logged
        and the rest still run: the answer has already left."""
        _pending.reset(self._token)
        for work in self._pending:
            try:
                work()
            except Exception:
                _logger.exception("work after a request's answer failed")
        self._pending.clear()


__all__ = ["AnswerFirst", "after_the_answer"]
