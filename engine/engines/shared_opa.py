"""One managed OPA for every worker of ``serve --workers N``.

The serving command's supervisor process runs the OPA (:class:`OpaHost`: a
:class:`engine.engines.opa.ManagedOpaEngine`, restarted when it dies, with the bundle hot
reload) and *publishes* where it listens in a small JSON file; each worker evaluates on it
through :class:`SharedOpaEngine`. One OPA per replica, as with an OPA sidecar, instead of one
per worker: measured here it costs less CPU per decision than N OPAs, each woken by a quarter
of the requests (``docs/benchmarks.md``, round 8).

The published file names the OPA's unix socket together with the bundle it serves. A new
bundle or a restarted OPA is a new socket and a new file, replaced atomically, and the file
is read again whenever it changed. A result carries the bundle of the OPA that produced it
(:meth:`engine.models.decision.PolicyResult.evaluated_by`), so a decision evaluated while the
supervisor swaps bundles records the bundle that decided, not the newer one. The previous
OPA keeps serving for the evaluation timeout after a swap, so in-flight evaluations finish.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.engines.base import DECISION_PATH
from engine.engines.bundle_watch import BundleWatcher, ReloadStatus
from engine.engines.opa import ManagedOpaEngine
from engine.engines.opa_async import AsyncOpaClient
from engine.engines.opa_http import OpaClient
from engine.errors import EngineUnavailable
from engine.models.decision import EngineInfo, PolicyInfo, PolicyResult

_logger = logging.getLogger(__name__)

PUBLISHED_NAME = "opa.json"


class OpaHost:
    """The supervisor's side: the managed OPA (and its bundle watcher), published."""

    def __init__(
        self, engine: ManagedOpaEngine, published: Path, *, bundle_poll_s: float = 0.0
    ) -> None:
        self.engine = engine
        self.published = published
        self._lock = threading.Lock()
        self.watcher: BundleWatcher | None = None
        engine.on_change(self.publish)
        if bundle_poll_s > 0:
            self.watcher = BundleWatcher(
                engine, engine.source, interval_s=bundle_poll_s, on_result=self._reloaded
            )
        self.publish()

    def _reloaded(self, _ok: bool) -> None:
        self.publish()  # the reload counts and the last refusal changed

    def publish(self) -> None:
        """Write where the OPA listens and what it serves (atomically: temp file, rename)."""
        with self._lock:
            status = self.watcher.status if self.watcher is not None else ReloadStatus(0, 0, None)
            serving = self.engine.serving
            document = {
                "address": serving.address,
                "pid": serving.pid,
                "version": self.engine.info.version,
                "policy": serving.policy.model_dump(),
                "restarts": self.engine.restarts,
                "reloads": {
                    "reloads": status.reloads,
                    "refusals": status.refusals,
                    "last_error": status.last_error,
                },
            }
            temp = self.published.with_name(f".{self.published.name}.{os.getpid()}")
            temp.write_text(json.dumps(document))
            os.replace(temp, self.published)

    def close(self) -> None:
        """Stop watching, withdraw the published file, stop OPA."""
        if self.watcher is not None:
            self.watcher.close()
        self.published.unlink(missing_ok=True)
        self.engine.close()


@dataclass(frozen=True)
class _Published:
    """One published OPA, with this worker's connections to it."""

    stamp: tuple[int, int, int]
    client: OpaClient
    aclient: AsyncOpaClient
    policy: PolicyInfo
    version: str
    restarts: int
    reloads: ReloadStatus

    def close(self) -> None:
        self.client.close()
        self.aclient.close()


def _read(path: Path, stamp: tuple[int, int, int], timeout: float) -> _Published:
    try:
        doc: dict[str, Any] = json.loads(path.read_bytes())
        address = str(doc["address"])
        policy = PolicyInfo.model_validate(doc["policy"])
        reloads = ReloadStatus(**doc["reloads"])
        version, restarts = str(doc["version"]), int(doc["restarts"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        detail = f"the shared OPA's address file {path} is unreadable: {exc}"
        raise EngineUnavailable(detail) from exc
    return _Published(
        stamp=stamp,
        client=OpaClient(address, timeout=timeout),
        aclient=AsyncOpaClient(address, timeout=timeout),
        policy=policy,
        version=version,
        restarts=restarts,
        reloads=reloads,
    )


class SharedOpaEngine:
    """A worker's side: evaluates on the OPA its supervisor publishes at ``published``."""

    def __init__(self, published: Path, *, timeout: float = 2.0) -> None:
        self._path = published
        self._timeout = timeout
        self._lock = threading.Lock()
        self._retired: list[_Published] = []
        self._current: _Published | None = None
        self._closed = False
        self._claims: dict[str, tuple[int, int]] = {}  # kind: (claimed up to, mine)
        self._resolve()

    def _stamp(self) -> tuple[int, int, int]:
        try:
            st = os.stat(self._path)
        except OSError as exc:
            raise EngineUnavailable(
                f"the shared OPA is not running (no {self._path}: the serving command stopped?)"
            ) from exc
        return st.st_ino, st.st_mtime_ns, st.st_size

    def _resolve(self) -> _Published:
        """The published OPA, re-read when the file changed (a stat per call)."""
        stamp = self._stamp()
        current = self._current
        if current is not None and current.stamp == stamp:
            return current
        with self._lock:
            if self._closed:
                raise EngineUnavailable("the shared OPA engine is closed")
            current = self._current
            if current is not None and current.stamp == stamp:
                return current
            fresh = _read(self._path, stamp, self._timeout)
            if current is not None:
                # Not closed at once: an evaluation on another thread may still use it.
                self._retired.append(current)
                while len(self._retired) > 2:
                    self._retired.pop(0).close()
            self._current = fresh
            return fresh

    def _latest(self) -> _Published | None:
        """The published OPA as now, else the last one seen (for figures, never decisions)."""
        try:
            return self._resolve()
        except EngineUnavailable:
            return self._current

    def evaluate(self, input_document: Mapping[str, Any]) -> PolicyResult:
        """Evaluate on the published OPA; once more if it was replaced meanwhile."""
        target = self._resolve()
        try:
            result = target.client.evaluate(DECISION_PATH, input_document)
        except EngineUnavailable:
            retry = self._resolve()
            if retry is target:
                raise
            target, result = retry, retry.client.evaluate(DECISION_PATH, input_document)
        return result.evaluated_by(target.policy)

    async def evaluate_async(self, input_document: Mapping[str, Any]) -> PolicyResult:
        """``evaluate`` from the event loop."""
        target = self._resolve()
        try:
            result = await target.aclient.evaluate(DECISION_PATH, input_document)
        except EngineUnavailable:
            retry = self._resolve()
            if retry is target:
                raise
            target = retry
            result = await retry.aclient.evaluate(DECISION_PATH, input_document)
        return result.evaluated_by(target.policy)

    @property
    def healthy(self) -> bool:
        """The published OPA answers ``/health?bundles``."""
        try:
            return self._resolve().client.healthy(bundles=True)
        except EngineUnavailable:
            return False

    @property
    def info(self) -> EngineInfo:
        """``opa`` and the version the supervisor runs."""
        current = self._current
        return EngineInfo(name="opa", version=current.version if current else "unknown")

    @property
    def policy(self) -> PolicyInfo:
        """The bundle the published OPA serves."""
        try:
            return self._resolve().policy
        except EngineUnavailable:
            if self._current is None:
                raise
            return self._current.policy

    @property
    def restarts(self) -> int:
        """The supervisor's OPA restarts *claimed by this worker*, for the metrics.

        Every worker exports its own count and ``/metrics`` sums the workers, so each
        restart is claimed by exactly one of them: the first to create its claim file
        (``O_EXCL``) next to the address file. The sum is the supervisor's count.
        """
        current = self._latest()
        return self._claim("restart", current.restarts if current else 0)

    @property
    def bundle_reloads(self) -> tuple[int, int]:
        """The supervisor's bundle reloads and refusals claimed by this worker (as
        :attr:`restarts`), for ``releasegate_bundle_reloads_total``."""
        current = self._latest()
        status = current.reloads if current else ReloadStatus(0, 0, None)
        return self._claim("reload", status.reloads), self._claim("refusal", status.refusals)

    def _claim(self, kind: str, published: int) -> int:
        with self._lock:
            upto, mine = self._claims.get(kind, (0, 0))
            for number in range(upto + 1, published + 1):
                claim = self._path.with_name(f"{self._path.name}.{kind}-{number}")
                try:
                    os.close(os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
                except FileExistsError:
                    continue
                except OSError:
                    _logger.warning("cannot claim OPA %s %d at %s", kind, number, claim)
                    continue
                mine += 1
            self._claims[kind] = (max(upto, published), mine)
            return mine

    @property
    def status(self) -> ReloadStatus:
        """The supervisor's bundle reloads: counts and the latest refusal."""
        try:
            return self._resolve().reloads
        except EngineUnavailable:
            return ReloadStatus(0, 0, None)

    def close(self) -> None:
        """Close this worker's connections (the OPA is the supervisor's)."""
        with self._lock:
            self._closed = True
            for published in [*self._retired, *([self._current] if self._current else [])]:
                published.close()
            self._retired.clear()
