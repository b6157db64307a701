"""Settings (environment ``RELEASEGATE_*`` and an optional settings file), validated at start.

Built by :func:`build_settings`, never at import time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from engine.engines.policy_source import PolicySource
from engine.errors import ConfigError, FieldError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BUNDLE = PROJECT_ROOT / "bundles" / "releasegate.tar.gz"
DEFAULT_BUNDLE_KEY = PROJECT_ROOT / "bundles" / "releasegate.pub.pem"
DEFAULT_POLICY_DIR = PROJECT_ROOT / "policies"


class Settings(BaseSettings):
    """Everything releasegate can be configured with."""

    model_config = SettingsConfigDict(env_prefix="RELEASEGATE_", extra="forbid", frozen=True)

    state_dir: Path = Path(".releasegate")
    dev_mode: bool = False

    # Policy engine
    opa: str | None = None
    """Path of the opa binary (else RELEASEGATE_OPA, .tools/bin/opa, PATH)."""
    opa_url: str | None = None
    """An existing OPA server (sidecar) instead of a managed process."""
    opa_shared: Path | None = None
    """Internal: the address file of the OPA that ``serve --workers N`` runs for its workers
    (``engine/engines/shared_opa.py``); set by the command for the processes it spawns."""
    bundle: Path | None = None
    """Policy bundle (.tar.gz) or directory; default: the committed signed bundle."""
    bundle_public_key: Path | None = None
    bundle_key_id: str = "releasegate"
    bundle_signing_alg: str = "ES256"
    eval_timeout_s: float = Field(default=2.0, gt=0, le=60)
    opa_gogc: int | None = Field(default=400, ge=1)
    """``GOGC`` of the managed OPA (Go's collector target); unset: OPA's own environment."""
    opa_gomaxprocs: int = Field(default=0, ge=0)
    """``GOMAXPROCS`` of the managed OPA (Go's processors). 0: one per service process that
    calls it (``workers``), at most the CPUs it may run on, unless ``GOMAXPROCS`` is in
    the environment already (``engine.engines.opa.opa_environment``)."""
    opa_store_read_optimized: bool = True
    """Start the managed OPA with ``--optimize-store-for-read-speed`` (policy data kept as
    evaluation values instead of being converted on every read)."""
    bundle_poll_s: float = Field(default=10.0, ge=0)
    """How often the service checks its bundle file for a new version (0: never)."""

    # Evidence
    trusted_root: Path | None = None
    """Sigstore trusted_root.json; default: the pinned public-good root shipped with releasegate."""
    attestation_keys: dict[str, Path] = Field(default_factory=dict)
    """Public keys (PEM) for key-signed DSSE envelopes and VSAs, by key id."""
    verification_cache_size: int = Field(default=1024, ge=0)
    """Attestation verification results kept (LRU); 0 disables the cache (benchmarks)."""
    slo_config: Path | None = None
    """Per-service SLO configuration with the Prometheus to query (docs/slo.md)."""

    # Service
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    """Service processes on one port (``serve --workers``) sharing one managed OPA; more
    than one uses more cores. They share the state directory's log and stores."""
    cpu_affinity: Literal["off", "auto"] = "off"
    """``auto``: ``serve`` keeps its own threads on the first usable CPU and its managed OPA
    on the others (one process, managed OPA, Linux; ``engine/affinity.py``)."""
    helper_scheduling: Literal["batch", "normal"] = "batch"
    """``batch``: the log's commit, writer and checkpoint threads and the caches' refresh
    thread run as ``SCHED_BATCH`` on Linux, so a waking one never preempts the event loop
    (``engine/helper_threads.py``); ``normal``: as they start."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    """Service log level (``serve --log-level``); ``debug`` adds tracebacks."""
    gc_freeze: bool = True
    """Exempt the objects alive once the service has started from Python's cyclic garbage
    collector (``gc.freeze``): full collections no longer walk them under load."""
    database_url: str | None = None
    """SQLAlchemy URL of the decision log; default: SQLite in the state directory."""
    max_body_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    server_timing: bool = True
    """Send the ``Server-Timing`` header (OPA's, the log's and the total milliseconds of a
    request; ``engine/api/timing.py``). The access log line has them either way."""
    approval_default_ttl_s: int = Field(default=24 * 3600, gt=0)
    approval_max_ttl_s: int = Field(default=7 * 24 * 3600, gt=0)
    admission_max_prior_age_s: int = Field(default=7 * 24 * 3600, gt=0)
    admission_environments: dict[str, str] = Field(default_factory=dict)
    """Namespace -> environment for ``POST /v1/admission`` (without an environment in the path)."""
    admission_default_environment: str | None = None
    """Environment of unmapped namespaces; unset: the namespace name is the environment."""
    mask_paths: list[str] = Field(default_factory=list)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    client_cert_roles: dict[str, list[str]] = Field(default_factory=dict)
    """Mutual TLS: client certificate common name -> roles (unmapped names need a token)."""
    auth_failure_limit: int = Field(default=10, gt=0)
    """Failed authentication attempts allowed per client address per window (then 429)."""
    auth_failure_window_s: int = Field(default=60, gt=0)
    token_cache_ttl_s: float = Field(default=5.0, ge=0, le=300)
    """How long the service trusts a token it authenticated before reading it again (0: never
    cache); a ``token revoke`` run by another process takes effect within this time. A token
    in use is read again in the background in the second half of it (``engine/refresh.py``)."""
    trusted_proxies: list[str] = Field(default_factory=list)
    """Addresses whose X-Forwarded-For is believed (empty: none; the peer address counts)."""
    bundle_dir: Path | None = None
    """Signed bundles served to OPA fleets at ``GET /bundles/{name}`` (unset: not served)."""
    vsa_verifier_id: str = "https://releasegate.dev/verifier/v1"
    """``predicate.verifier.id`` of the VSAs the service signs."""

    @model_validator(mode="after")
    def _check_consistency(self) -> Settings:
        if self.approval_default_ttl_s > self.approval_max_ttl_s:
            raise ValueError("approval_default_ttl_s exceeds approval_max_ttl_s")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be set together")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("tls_client_ca (mutual TLS) needs tls_cert and tls_key")
        if self.opa_shared is not None and self.opa_url:
            raise ValueError("opa_shared (set by serve --workers) and opa_url exclude each other")
        if self.cpu_affinity == "auto" and (self.workers > 1 or self.opa_url):
            raise ValueError(
                "cpu_affinity auto places one service process and its managed OPA; with "
                "workers > 1 or opa_url, place the processes with taskset or a cpuset instead"
            )
        return self

    def policy_source(self) -> PolicySource:
        """The bundle OPA loads: configured, else the committed signed bundle, else policies/."""
        if self.bundle is not None:
            return PolicySource(
                path=self.bundle,
                public_key=self.bundle_public_key,
                key_id=self.bundle_key_id,
                signing_alg=self.bundle_signing_alg,
            )
        if DEFAULT_BUNDLE.is_file() and DEFAULT_BUNDLE_KEY.is_file():
            return PolicySource(
                path=DEFAULT_BUNDLE,
                public_key=DEFAULT_BUNDLE_KEY,
                key_id=self.bundle_key_id,
                signing_alg=self.bundle_signing_alg,
            )
        if DEFAULT_POLICY_DIR.is_dir():
            return PolicySource(path=DEFAULT_POLICY_DIR)
        raise ConfigError("no policy bundle configured (set RELEASEGATE_BUNDLE)")


def build_settings(**overrides: Any) -> Settings:
    """Read settings from the environment plus explicit overrides; raise ``ConfigError``."""
    cleaned = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**cleaned)
    except ValidationError as exc:
        errors = [
            FieldError(".".join(str(p) for p in e["loc"]) or "settings", e["msg"])
            for e in exc.errors()
        ]
        raise ConfigError("invalid settings", errors=errors) from exc


def env_flag(name: str) -> bool:
    """True when an environment variable is set to a truthy value."""
    return os.environ.get(name, "").lower() in {"1", "true", "yes", "on"}
