"""Verified hot reload: watch the bundle file and swap it into the managed OPA.

Like OPA's own bundle polling: every ``interval_s`` the bundle's size and modification time
are compared; on a change the new bundle is started in a fresh OPA (signature verified by
releasegate and by OPA), and only a healthy one replaces the old. A bad or unsigned bundle is
refused: the previous one keeps serving, and the refusal shows in the logs, the metrics
(``releasegate_bundle_reloads_total{result="refused"}``) and ``/readyz``.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.engines.opa import ManagedOpaEngine
from engine.engines.policy_source import PolicySource
from engine.errors import EngineError

_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReloadStatus:
    """The outcome of the latest reload attempt (None before any)."""

    reloads: int
    refusals: int
    last_error: str | None


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    if path.is_dir():
        newest = max((p.stat().st_mtime_ns for p in path.rglob("*") if p.is_file()), default=0)
        return newest, 0
    return st.st_mtime_ns, st.st_size


class BundleWatcher:
    """Polls the bundle of a :class:`ManagedOpaEngine` and reloads it when it changes."""

    def __init__(
        self,
        engine: ManagedOpaEngine,
        source: PolicySource,
        *,
        interval_s: float,
        on_result: Callable[[bool], None] | None = None,
    ) -> None:
        self._engine = engine
        self._source = source
        self._interval_s = interval_s
        self._on_result = on_result
        self._seen = _stamp(source.path)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._reloads = 0
        self._refusals = 0
        self._last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="bundle-watcher", daemon=True)
        self._thread.start()

    @property
    def status(self) -> ReloadStatus:
        """Counts and the latest refusal (cleared by a successful reload)."""
        with self._lock:
            return ReloadStatus(self._reloads, self._refusals, self._last_error)

    def check_now(self) -> bool | None:
        """Reload if the bundle changed: True reloaded, False refused, None unchanged."""
        stamp = _stamp(self._source.path)
        if stamp is None or stamp == self._seen:
            return None
        self._seen = stamp
        # A fresh PolicySource recomputes revision and digest from the new file.
        fresh = dataclasses.replace(self._source)
        try:
            self._engine.reload(fresh)
        except EngineError as exc:
            _logger.error("policy bundle %s refused, previous bundle keeps serving: %s",
                          fresh.path, exc)  # fmt: skip
            with self._lock:
                self._refusals += 1
                self._last_error = exc.message[:500]
            self._notify(False)
            return False
        policy = self._engine.policy
        _logger.info("policy bundle reloaded: revision %s (%s)", policy.revision, policy.digest)
        with self._lock:
            self._reloads += 1
            self._last_error = None
        self._notify(True)
        return True

    def _notify(self, ok: bool) -> None:
        if self._on_result is not None:
            self._on_result(ok)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.check_now()
            except Exception:  # noqa: BLE001 - the watcher must outlive any surprise
                _logger.exception("bundle watcher error")

    def close(self) -> None:
        """Stop polling."""
        self._stop.set()
        self._thread.join(timeout=5)
