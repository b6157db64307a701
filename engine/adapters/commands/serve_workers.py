"""``serve --workers N``: N service processes on one port, under uvicorn's supervisor.

One Python process decides on one core at a time (the interpreter lock), so the embedded
service uses a second core with a second process. The command prepares the state directory
once (log schema, signing key, stores), binds the port, exports its settings as
``RELEASEGATE_*`` for the workers and runs uvicorn's ``Multiprocess`` supervisor: it spawns
the workers (:mod:`engine.api.worker`), replaces one that dies, and on SIGTERM or SIGINT
stops them all, each closing its log gracefully. The workers share one managed OPA, which
this process runs, restarts and hot-reloads (:mod:`engine.engines.shared_opa`), as a replica
shares an OPA sidecar; with ``opa_url`` they use that OPA instead. The workers share the log
file: appends from different processes are serialized by :mod:`engine.log.filelock` and
SQLite, and ``/metrics`` sums every worker's figures (:mod:`engine.api.metrics`). What stays
per worker: the token cache, the verification cache and the failed-authentication limiter.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.api.metrics import MULTIPROCESS_ENV

if TYPE_CHECKING:
    from engine.engines.shared_opa import OpaHost


def _start_opa(settings: Any, run_dir: Path) -> OpaHost:
    """The managed OPA every worker evaluates on, published in ``run_dir``."""
    from engine.engines.shared_opa import PUBLISHED_NAME, OpaHost
    from engine.runtime import managed_engine

    engine = managed_engine(settings)
    try:
        return OpaHost(engine, run_dir / PUBLISHED_NAME, bundle_poll_s=settings.bundle_poll_s)
    except BaseException:
        engine.close()
        raise


def _prepare_state(settings: Any, opa: OpaHost | None) -> None:
    """Create the log schema, signing key and stores once (not N times at once); summary."""
    from engine.adapters.commands.serve import print_summary
    from engine.approvals import ApprovalStore
    from engine.auth.sql import database_url
    from engine.auth.tokens import TokenStore
    from engine.log import open_decision_log

    url = database_url(settings.state_dir, settings.database_url)
    scheme = "https" if settings.tls_cert else "http"
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    log = open_decision_log(settings.state_dir, database_url=settings.database_url)
    try:
        ApprovalStore(
            url,
            default_ttl_s=settings.approval_default_ttl_s,
            max_ttl_s=settings.approval_max_ttl_s,
        ).close()
        tokens = TokenStore(url)
        try:
            print_summary(
                settings, log=log, runtime=None, tokens=tokens,
                url=f"{scheme}://{host}:{settings.port}",
                shared_opa_pid=None if opa is None else opa.engine.pid,
            )  # fmt: skip
        finally:
            tokens.close()
    finally:
        log.close()


def _export(settings: Any, metrics_dir: str, opa: OpaHost | None) -> None:
    """The settings the flags gave, for the spawned workers (which read the environment)."""
    if opa is not None:
        os.environ["RELEASEGATE_OPA_SHARED"] = os.fspath(opa.published)
    os.environ.update(
        {
            "RELEASEGATE_STATE_DIR": os.fspath(settings.state_dir.resolve()),
            "RELEASEGATE_HOST": settings.host,
            "RELEASEGATE_PORT": str(settings.port),
            "RELEASEGATE_DEV_MODE": "true" if settings.dev_mode else "false",
            "RELEASEGATE_LOG_LEVEL": settings.log_level,
            "RELEASEGATE_WORKERS": str(settings.workers),
            MULTIPROCESS_ENV: metrics_dir,
        }
    )


def serve_workers(settings: Any) -> int:
    """Serve until SIGTERM/SIGINT; 1 when a worker could not start."""
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors import Multiprocess

    from engine.adapters.commands.serve import uvicorn_options
    from engine.api.logs import configure_logging
    from engine.api.worker import FACTORY

    config = uvicorn.Config(
        FACTORY, factory=True, workers=settings.workers, **uvicorn_options(settings)
    )
    sock = config.bind_socket()
    try:
        if settings.port == 0:  # the port the kernel chose is the one the workers share
            settings = settings.model_copy(update={"port": sock.getsockname()[1]})
        if settings.opa_url is None:  # refuse a missing or foreign-signed bundle here, once
            settings.policy_source().opa_args()
        configure_logging(settings.log_level)
        with tempfile.TemporaryDirectory(prefix="releasegate-workers-") as run_dir:
            metrics_dir = Path(run_dir, "metrics")
            metrics_dir.mkdir()
            opa = None if settings.opa_url else _start_opa(settings, Path(run_dir))
            try:
                _prepare_state(settings, opa)
                _export(settings, os.fspath(metrics_dir), opa)
                supervisor = Multiprocess(config, sockets=[sock])
                supervisor.run()
            finally:
                if opa is not None:
                    opa.close()
    finally:
        sock.close()
    return 1 if any(p.exitcode == STARTUP_FAILURE for p in supervisor.processes) else 0
