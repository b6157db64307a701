"""Rate limiting of failed authentication attempts, per client address."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable


class FailureLimiter:
    """At most ``limit`` failures per ``window_s`` per address; then refuse until they age out.

    A sliding window of failure times per address. While an address is over the limit, every
    authenticated request from it is refused (429) before its credentials are looked at.
    """

    def __init__(
        self,
        *,
        limit: int = 10,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        max_addresses: int = 10_000,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._max = max_addresses
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _trim(self, address: str, now: float) -> deque[float]:
        times = self._failures.get(address)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[address]
        return times

    def retry_after(self, address: str) -> int | None:
        """Seconds until ``address`` may try again, or None when it is not blocked."""
        with self._lock:
            now = self._clock()
            times = self._trim(address, now)
            if len(times) < self.limit:
                return None
            return max(1, math.ceil(times[-self.limit] + self.window_s - now))

    def failure(self, address: str) -> None:
        """Record one failed attempt."""
        with self._lock:
            now = self._clock()
            if address not in self._failures and len(self._failures) >= self._max:
                # NOTE: bound memory under an address-spraying attack: forget the oldest.
                self._failures.pop(next(iter(self._failures)))
            self._trim(address, now)
            self._failures.setdefault(address, deque()).append(now)
