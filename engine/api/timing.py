"""Where a request's time went: the ``Server-Timing`` response header.

Every response the service sends carries a W3C ``Server-Timing`` header
(https://www.w3.org/TR/server-timing/) with the milliseconds spent, inside this process,
on the parts of the request that wait on something else:

* ``opa``: the policy engine's evaluation, from the request sent to OPA to its answer read;
* ``log``: the decision's record, drafted, signed and durably committed to the log;
* ``total``: from the request's arrival at the service's middleware to the response's
  first byte, which includes both.

``Server-Timing: opa;dur=1.412, log;dur=1.356, total;dur=4.108``. A request that made no
decision has ``total`` only. Browsers' developer tools, ``curl -v`` and load generators
read it; the benchmark (``python -m benchmarks``) prints the parts of the service's
latency from it, next to the same steps measured alone. The access log line carries the
same figures (``opa_ms``, ``log_ms``, ``duration_ms``). ``RELEASEGATE_SERVER_TIMING=false``
leaves the header out (the log line keeps them).

The middleware starts a :class:`RequestTiming` per request in a context variable; the
metered engine and recorder (``engine.api.metrics``), which already time each evaluation
and append for the Prometheus histograms, add their durations to it. A context variable
follows the request into a worker thread (anyio copies the context), and the object is
shared, so a part timed there counts too.
"""

from __future__ import annotations

from contextvars import ContextVar


class RequestTiming:
    """Seconds spent so far on the parts of one request."""

    __slots__ = ("log_s", "opa_s")

    def __init__(self) -> None:
        self.opa_s: float | None = None
        self.log_s: float | None = None

    def header_value(self, total_s: float) -> bytes:
        """The ``Server-Timing`` value: each part timed, then the total, in ms."""
        parts = []
        if self.opa_s is not None:
            parts.append(f"opa;dur={self.opa_s * 1000:.3f}")
        if self.log_s is not None:
            parts.append(f"log;dur={self.log_s * 1000:.3f}")
        parts.append(f"total;dur={total_s * 1000:.3f}")
        return ", ".join(parts).encode("ascii")


current_timing: ContextVar[RequestTiming | None] = ContextVar(
    "releasegate_request_timing", default=None
)
"""The timing of the request being served (None outside a request)."""


def add_opa(seconds: float) -> None:
    """Count an evaluation's seconds to the current request (if any)."""
    timing = current_timing.get()
    if timing is not None:
        timing.opa_s = (timing.opa_s or 0.0) + seconds


def add_log(seconds: float) -> None:
    """Count a record's seconds to the current request (if any)."""
    timing = current_timing.get()
    if timing is not None:
        timing.log_s = (timing.log_s or 0.0) + seconds


def parse_server_timing(value: str) -> dict[str, float]:
    """``{"opa": 1.412, ...}`` (ms) from a ``Server-Timing`` value; metrics without a
    ``dur`` are left out, a malformed one raises ``ValueError``."""
    out: dict[str, float] = {}
    for metric in value.split(","):
        name, *params = (p.strip() for p in metric.split(";"))
        if not name:
            raise ValueError(f"Server-Timing metric without a name: {metric!r}")
        for param in params:
            key, _, raw = param.partition("=")
            if key.strip().lower() == "dur":
                out[name] = float(raw.strip().strip('"'))
    return out


__all__ = ["RequestTiming", "add_log", "add_opa", "current_timing", "parse_server_timing"]
