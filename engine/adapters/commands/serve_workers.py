"""``serve --workers N``: N service processes on one port, under uvicorn's supervisor.

One Python process decides on one core at a time (the interpreter lock), so the embedded
service uses a second core with a second process. The command prepares the state directory
once (log schema, signing key, stores), binds the port, exports its settings as
``RELEASEGATE_*`` for the workers and runs uvicorn's ``Multiprocess`` supervisor: it spawns
the workers (:mod:`engine.api.worker`), replaces one that dies, and on SIGTERM or SIGINT
stops them all, each closing its OPA and its log gracefully. The workers share the log file:
appends from different processes are serialized by :mod:`engine.log.filelock` and SQLite,
and ``/metrics`` sums every worker's figures (:mod:`engine.api.metrics`). What stays per
worker: the token cache, the verification cache, the failed-authentication limiter and the
bundle hot reload (each worker watches the bundle file and reloads its own OPA).
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from engine.api.metrics import MULTIPROCESS_ENV


def _prepare_state(settings: Any) -> None:
    """Create the log schema, signing key and stores once (not N times at once); summary."""
    from engine.adapters.commands.serve import print_summary
    from engine.approvals import ApprovalStore
    from engine.auth.sql import database_url
    from engine.auth.tokens import TokenStore
    from engine.log import open_decision_log

    if settings.opa_url is None:  # refuse a missing or foreign-signed bundle here, once
        settings.policy_source().opa_args()
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
            )  # fmt: skip
        finally:
            tokens.close()
    finally:
        log.close()


def _export(settings: Any, metrics_dir: str) -> None:
    """The settings the flags gave, for the spawned workers (which read the environment)."""
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
    from engine.api.middleware import configure_logging
    from engine.api.worker import FACTORY

    config = uvicorn.Config(
        FACTORY, factory=True, workers=settings.workers, **uvicorn_options(settings)
    )
    sock = config.bind_socket()
    try:
        if settings.port == 0:  # the port the kernel chose is the one the workers share
            settings = settings.model_copy(update={"port": sock.getsockname()[1]})
        _prepare_state(settings)
        configure_logging(settings.log_level)
        with tempfile.TemporaryDirectory(prefix="releasegate-metrics-") as metrics_dir:
            _export(settings, metrics_dir)
            supervisor = Multiprocess(config, sockets=[sock])
            supervisor.run()
    finally:
        sock.close()
    return 1 if any(p.exitcode == STARTUP_FAILURE for p in supervisor.processes) else 0
