"""A real Prometheus on loopback, over series backfilled with ``promtool`` (reusable in tests).

Series are defined by their per-minute increments, so every windowed figure can be worked out
by hand: a counter sampled every minute at exact minute boundaries that end at the evaluation
time gives ``increase(x[w])`` = the sum of the increments of the last ``w`` minutes, with no
extrapolation (Prometheus 2.x range selectors include both ends). Samples older than a day are
written every ``coarse_step`` minutes (still aligned), which keeps backfill quick.

Needs the Debian ``prometheus`` package (``prometheus`` and ``promtool`` on PATH, or
``$PROMETHEUS_BIN`` / ``$PROMTOOL_BIN``). The Debian service is not used.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

START_DEADLINE_S = 60.0  # generous upper bound for Prometheus to load the blocks; never asserted

Increment = Callable[[int], float]
"""Counter increase in the minute that ends ``age`` minutes before the evaluation time."""


@dataclass(frozen=True)
class Series:
    """One counter series: its metric name with labels, and its per-minute increments."""

    name: str
    increment: Increment


@dataclass(frozen=True)
class PrometheusServer:
    """A running test Prometheus."""

    url: str
    pid: int


def find_binary(name: str, env: str) -> Path:
    """``$env``, then ``name`` on PATH; fail (never skip) when absent."""
    for candidate in (os.environ.get(env), shutil.which(name)):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    pytest.fail(f"{name} is required: apt-get install -y prometheus (or set ${env})")


def write_openmetrics(
    path: Path,
    series: Sequence[Series],
    *,
    end: int,
    minutes: int,
    fine_minutes: int = 1500,
    coarse_step: int = 30,
) -> None:
    """Write counters from ``end - minutes`` to ``end`` (unix seconds, minute-aligned).

    A counter starts at 0 ``minutes`` before ``end``; the sample at age ``a`` minutes adds
    ``increment(a)`` to the previous one. Samples younger than ``fine_minutes`` are written
    every minute, older ones every ``coarse_step`` minutes (so window starts that are
    multiples of ``coarse_step`` minutes still fall on a sample).
    """
    if end % 60:
        raise ValueError("end must be minute-aligned")
    families = sorted({s.name.split("{", 1)[0] for s in series})
    with path.open("w", encoding="utf-8") as out:
        for family in families:
            base = family.removesuffix("_total")
            out.write(f"# TYPE {base} counter\n")
            for s in series:
                if s.name.split("{", 1)[0] != family:
                    continue
                value = 0.0
                for age in range(minutes, -1, -1):
                    if age < minutes:
                        value += s.increment(age)
                    if age < fine_minutes or age % coarse_step == 0:
                        out.write(f"{s.name} {value!r} {end - age * 60}\n")
        out.write("# EOF\n")


def backfill(openmetrics: Path, tsdb: Path) -> None:
    """Turn an OpenMetrics file into TSDB blocks with ``promtool``."""
    promtool = find_binary("promtool", "PROMTOOL_BIN")
    subprocess.run(  # noqa: S603 - fixed argv, test-owned paths
        [
            str(promtool),
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            "-q",
            str(openmetrics),
            str(tsdb),
        ],
        check=True,
        capture_output=True,
    )


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as r:  # noqa: S310 - loopback
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def running_prometheus(tsdb: Path, workdir: Path) -> Iterator[PrometheusServer]:
    """Start ``prometheus`` on 127.0.0.1 over ``tsdb`` with no scrape targets; stop it after."""
    binary = find_binary("prometheus", "PROMETHEUS_BIN")
    config = workdir / "prometheus.yml"
    config.write_text("global: {}\n", encoding="utf-8")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (workdir / "prometheus.log").open("wb")
    proc = subprocess.Popen(  # noqa: S603 - fixed argv
        [
            str(binary),
            f"--config.file={config}",
            f"--storage.tsdb.path={tsdb}",
            "--storage.tsdb.retention.time=100y",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + START_DEADLINE_S
        while not _ready(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                detail = (workdir / "prometheus.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"prometheus did not become ready: {detail}")
            time.sleep(0.1)
        yield PrometheusServer(url=url, pid=proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@contextmanager
def prometheus_with(
    series: Sequence[Series], *, end: int, minutes: int, workdir: Path
) -> Iterator[PrometheusServer]:
    """Backfill ``series`` ending at ``end`` and serve them from a fresh Prometheus."""
    openmetrics = workdir / "series.om"
    tsdb = workdir / "tsdb"
    write_openmetrics(openmetrics, series, end=end, minutes=minutes)
    backfill(openmetrics, tsdb)
    openmetrics.unlink()
    with running_prometheus(tsdb, workdir) as server:
        yield server
