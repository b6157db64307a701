"""``releasegate serve``: the embedded decision service under uvicorn.

Starts a managed OPA on the configured (or committed, signed) bundle, opens the state
directory (SQLite log, Ed25519 signing key created on first start with mode 0600, token
hashes), prints what it uses and where, and serves the API. Settings come from
``RELEASEGATE_*`` plus the flags and are validated first; insecure settings are refused
unless ``--dev``. No network calls at start, and fastapi/uvicorn are imported only here.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import stat
import sys
from pathlib import Path
from typing import Any

from engine.affinity import CpuPlan
from engine.errors import ConfigError, FieldError

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def is_loopback(host: str) -> bool:
    """True for a loopback address or name (``127.0.0.1``, ``::1``, ``localhost``)."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def insecure_settings(settings: Any) -> list[FieldError]:
    """What makes these settings unsafe to serve with outside ``--dev``."""
    from engine.log.keystore import PRIVATE_KEY_FILE, keys_dir

    problems: list[FieldError] = []
    if not is_loopback(settings.host) and settings.tls_cert is None:
        problems.append(
            FieldError("host", f"{settings.host} is not loopback and TLS is off (set tls_cert)")
        )
    state_dir: Path = settings.state_dir
    if state_dir.exists() and state_dir.stat().st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        problems.append(FieldError("state_dir", f"{state_dir} is writable by group or others"))
    key = keys_dir(state_dir) / PRIVATE_KEY_FILE
    if key.exists() and key.stat().st_mode & 0o077:
        problems.append(FieldError("state_dir", f"signing key {key} is readable by others"))
    for path_field in ("tls_cert", "tls_key", "tls_client_ca"):
        path = getattr(settings, path_field)
        if path is not None and not Path(path).is_file():
            problems.append(FieldError(path_field, f"{path} does not exist"))
    return problems


def print_summary(
    settings: Any,
    *,
    log: Any,
    runtime: Any | None,
    tokens: Any,
    url: str,
    cpus: CpuPlan | None = None,
    shared_opa_pid: int | None = None,
) -> None:
    """What the service uses and where; ``runtime`` None: ``serve --workers`` (the workers
    share the managed OPA ``shared_opa_pid``, or the remote one)."""
    from sqlalchemy.engine import make_url

    from engine.auth.sql import database_url
    from engine.log.keystore import PRIVATE_KEY_FILE, keys_dir

    db = make_url(database_url(settings.state_dir, settings.database_url))
    source = settings.policy_source()
    active = tokens.count_active()
    lines = [
        f"releasegate serve{' (DEV MODE: insecure settings allowed)' if settings.dev_mode else ''}",
        f"  state dir:   {settings.state_dir.resolve()}",
        f"  database:    {db.render_as_string(hide_password=True)}",
        f"  signing key: {log.signer.key_id} "
        f"({(keys_dir(settings.state_dir) / PRIVATE_KEY_FILE).resolve()}, mode 0600)",
        f"  tokens:      {active} active"
        + (
            ""
            if active
            else f" (create one: releasegate token create --state-dir "
            f"{settings.state_dir} --subject NAME --role ci)"
        ),
        f"  policy:      {source.path} (signed: {'yes' if source.public_key else 'no'})",
    ]
    if runtime is not None:
        policy, info = runtime.engine.policy, runtime.engine.info
        pid = getattr(runtime.engine, "pid", None)
        lines += [
            f"  bundle:      revision {policy.revision} digest {policy.digest}",
            f"  engine:      {info.name} {info.version}"
            + (f" (managed, pid {pid})" if pid is not None else " (remote)"),
        ]
    else:
        if settings.opa_url is None:
            policy = source.info
            lines.append(f"  bundle:      revision {policy.revision} digest {policy.digest}")
        lines += [
            f"  workers:     {settings.workers} processes, "
            + (
                f"sharing one managed OPA (pid {shared_opa_pid})"
                if shared_opa_pid is not None
                else "remote OPA"
            ),
        ]
    if cpus is not None:
        lines.append(f"  cpus:        {cpus.describe()} (cpu_affinity auto)")
    lines += [
        f"  mutual TLS:  {'on' if settings.tls_client_ca else 'off'}",
        f"  url:         {url}",
    ]
    print("\n".join(lines), flush=True)


def place_on_cpus(settings: Any) -> CpuPlan | None:
    """``cpu_affinity auto``: pin this process's threads now (threads started later inherit
    it); the plan's OPA CPUs go to the managed OPA. None when off or nothing to split."""
    if settings.cpu_affinity != "auto":
        return None
    from engine.affinity import pin_process, plan_for, usable_cpus

    if not hasattr(os, "sched_setaffinity"):
        raise ConfigError(
            "refusing cpu_affinity auto",
            errors=[FieldError("cpu_affinity", "auto needs Linux (sched_setaffinity)")],
        )
    plan = plan_for(usable_cpus())
    if plan is None:
        print(
            "warning: cpu_affinity auto: fewer than two usable CPUs, nothing to split",
            file=sys.stderr,
        )
        return None
    pin_process(plan.service)
    return plan


class _Terminated(Exception):
    """SIGTERM after uvicorn's graceful shutdown."""


def _terminated(signum: int, frame: Any) -> None:
    raise _Terminated


def uvicorn_options(settings: Any) -> dict[str, Any]:
    """``uvicorn.Config`` keywords for these settings (one process or every worker)."""
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_config": None,
        "access_log": False,
        "server_header": False,
        "lifespan": "on",
        "timeout_graceful_shutdown": 10,
        # NOTE(lead): uvicorn trusts X-Forwarded-For from 127.0.0.1 by default, which lets
        # a local client rotate its apparent address past the failed-auth limit. Proxy
        # headers are honoured only from the addresses configured as trusted proxies.
        "proxy_headers": bool(settings.trusted_proxies),
        "forwarded_allow_ips": list(settings.trusted_proxies) or None,
    }
    if settings.tls_cert is not None:
        options |= {"ssl_certfile": str(settings.tls_cert), "ssl_keyfile": str(settings.tls_key)}
    if settings.tls_client_ca is None:
        from engine.api.coalesce import CoalescingHttpToolsProtocol

        options["http"] = CoalescingHttpToolsProtocol  # one write per response
    else:
        import ssl

        from engine.api.tls import ClientCertH11Protocol

        options |= {
            "ssl_ca_certs": str(settings.tls_client_ca),
            "ssl_cert_reqs": ssl.CERT_REQUIRED,
            "http": ClientCertH11Protocol,
        }
    return options


def run(args: argparse.Namespace) -> int:
    """Validate, open the state, serve until interrupted."""
    from engine.config import build_settings

    settings = build_settings(
        host=args.host,
        port=args.port,
        state_dir=None if args.state_dir is None else args.state_dir.resolve(),
        dev_mode=args.dev or None,
        workers=args.workers,
        log_level=args.log_level,
        cpu_affinity=args.cpu_affinity,
    )
    problems = insecure_settings(settings)
    if problems and not settings.dev_mode:
        raise ConfigError("refusing insecure settings (use --dev to override)", errors=problems)
    for problem in problems:
        print(f"warning (dev mode): {problem.loc}: {problem.message}", file=sys.stderr)
    settings.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if settings.workers > 1:
        from engine.adapters.commands.serve_workers import serve_workers

        return serve_workers(settings)

    import uvicorn

    from engine.api import create_app
    from engine.api.logs import configure_logging
    from engine.approvals import ApprovalStore
    from engine.auth.sql import database_url
    from engine.auth.tokens import TokenStore
    from engine.log import MaskRule, open_decision_log
    from engine.runtime import open_runtime

    cpus = place_on_cpus(settings)
    url = database_url(settings.state_dir, settings.database_url)
    masks = [MaskRule.parse(p) for p in settings.mask_paths]
    closers: list[Any] = []
    try:
        log = open_decision_log(settings.state_dir, database_url=settings.database_url, masks=masks)
        closers.append(log)
        approvals = ApprovalStore(
            url,
            default_ttl_s=settings.approval_default_ttl_s,
            max_ttl_s=settings.approval_max_ttl_s,
        )
        closers.append(approvals)
        tokens = TokenStore(url, cache_ttl_s=settings.token_cache_ttl_s, refresh_ahead=True)
        closers.append(tokens)
        runtime = open_runtime(settings, opa_cpus=None if cpus is None else cpus.opa)
        closers.append(runtime)
        app = create_app(
            settings, runtime=runtime, decision_log=log, approvals=approvals, tokens=tokens
        )
        scheme = "https" if settings.tls_cert else "http"
        host = f"[{settings.host}]" if ":" in settings.host else settings.host
        print_summary(
            settings, log=log, runtime=runtime, tokens=tokens,
            url=f"{scheme}://{host}:{settings.port}", cpus=cpus,
        )  # fmt: skip
        configure_logging(settings.log_level)
        server = uvicorn.Server(uvicorn.Config(app, **uvicorn_options(settings)))
        # NOTE: uvicorn re-raises a captured SIGTERM after its graceful shutdown; with the
        # default action the process would die before closing OPA and the log below.
        previous = signal.signal(signal.SIGTERM, _terminated)
        try:
            server.run()
        except _Terminated:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
        return 0 if server.started else 1
    finally:
        for closer in reversed(closers):
            closer.close()


def register(subparsers: Any) -> None:
    """Add the ``serve`` sub-command."""
    p = subparsers.add_parser(
        "serve",
        help="run the decision service (API, managed OPA, signed log)",
        description="Serve the releasegate API on 127.0.0.1:8080 (default) with a managed OPA "
        "and the state directory's signed decision log. Settings: RELEASEGATE_* and flags.",
    )
    p.add_argument("--host", default=None, help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default 8080)")
    p.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="state directory (default RELEASEGATE_STATE_DIR or ./.releasegate)",
    )
    p.add_argument(
        "--dev",
        action="store_true",
        help="development mode: allow insecure settings, with warnings "
        "(or RELEASEGATE_DEV_MODE=true)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="service processes on the port, sharing one managed OPA and the "
        "state directory (default 1, or RELEASEGATE_WORKERS)",
    )
    p.add_argument(
        "--cpu-affinity",
        default=None,
        choices=("off", "auto"),
        help="auto: this process's threads on the first usable CPU, its managed OPA on the "
        "others (one process; default off, or RELEASEGATE_CPU_AFFINITY)",
    )
    p.add_argument(
        "--log-level",
        default=None,
        choices=("debug", "info", "warning", "error"),
        help="default info, or RELEASEGATE_LOG_LEVEL",
    )
    p.set_defaults(func=run)
