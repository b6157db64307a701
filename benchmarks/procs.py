"""Processes under test: ``releasegate serve``, a bare ``opa run --server``, the load generator.

Also reads CPU time from ``/proc/<pid>/stat`` (a process plus its descendants, e.g. the
service and its managed OPA) and describes the machine.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")
START_DEADLINE_S = 60.0


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def machine_info() -> dict[str, Any]:
    """nproc, load average, CPU model, Python (and which interpreter: the same service did
    9-17 % more decisions/s on one build of 3.11 than on another here, docs/benchmarks.md
    round 15) and kernel (the header of every run)."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "loadavg_start": list(os.getloadavg()),
        "cpu_model": model,
        "python": platform.python_version(),
        "python_executable": os.path.realpath(sys.executable),
        "kernel": platform.release(),
        "clk_tck": CLK_TCK,
    }


def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3.. of ``/proc/<pid>/stat`` (after the command name), or None when gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants, from every process's parent link in ``/proc``.

    (Not the ``/proc/<pid>/task/<tid>/children`` lists: a thread that exits while they are
    read hides the children listed after it, which once dropped two workers' OPAs from a run.)
    """
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is not None:
            parents.setdefault(int(fields[1]), []).append(int(entry))  # ppid (field 4)
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(parents.get(p, []))
    return out


def named(pids: list[int], name: str) -> list[int]:
    """The processes among ``pids`` whose command name (``/proc/<pid>/comm``) is ``name``."""
    found = []
    for pid in pids:
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == name:
                found.append(pid)
        except OSError:
            continue
    return found


def environment_value(pid: int, name: str) -> str | None:
    """``name`` in the environment process ``pid`` started with (None: unset, or gone)."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    prefix = name.encode() + b"="
    for item in raw.split(b"\0"):
        if item.startswith(prefix):
            return item[len(prefix) :].decode(errors="replace")
    return None


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of each process, in seconds (0 for a process that is gone)."""
    return sum(cpu_by_process(pids).values())


def cpu_by_process(pids: list[int]) -> dict[int, float]:
    """utime + stime of each live process among ``pids``, in seconds."""
    out: dict[int, float] = {}
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            out[pid] = (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (14, 15)
    return out


def busy_seconds(stat_text: str) -> float:
    """CPU seconds the whole machine spent not idle, from ``/proc/stat``'s ``cpu`` line.

    user + nice + system + irq + softirq + steal (guest time is inside user); idle and
    iowait are waiting. Every process on the machine counts, the benchmark's or not.
    """
    user, nice, system, _idle, _iowait, irq, softirq, steal = _cpu_states(stat_text)
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def _cpu_states(stat_text: str) -> list[int]:
    """The first eight states of ``/proc/stat``'s aggregate ``cpu`` line, in ticks."""
    for line in stat_text.splitlines():
        if line.startswith("cpu "):
            return [int(v) for v in line.split()[1:9]]
    raise ValueError("no aggregate 'cpu' line in /proc/stat")


def machine_busy_seconds() -> float:
    """:func:`busy_seconds` of this machine now."""
    return busy_seconds(Path("/proc/stat").read_text())


def steal_seconds(stat_text: str) -> float:
    """CPU seconds this virtual machine's CPUs were ready to run while the host ran something
    else (``steal`` of ``/proc/stat``'s ``cpu`` line; 0 on bare metal)."""
    return _cpu_states(stat_text)[7] / CLK_TCK


def machine_stat_seconds() -> tuple[float, float]:
    """``(busy, steal)`` seconds of this machine now, from one read of ``/proc/stat``."""
    text = Path("/proc/stat").read_text()
    return busy_seconds(text), steal_seconds(text)


def established_connections(port: int) -> set[int]:
    """Socket inodes of the established TCP connections whose local port is ``port``."""
    found: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "01":  # 01: ESTABLISHED
                found.add(int(fields[9]))
    return found


def connections_per_process(pids: list[int], port: int) -> dict[int, int]:
    """How many of the established connections to ``port`` each process holds (by its fds).

    With ``serve --workers N`` a connection stays with the worker that accepted it: this
    shows how the load generator's connections were split between the workers.
    """
    inodes = established_connections(port)
    held: dict[int, int] = {}
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        count = 0
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:[") and int(target[8:-1]) in inodes:
                count += 1
        if count:
            held[pid] = count
    return held


@dataclass
class TreeCpu:
    """CPU spent by a process tree between :meth:`start` and :meth:`stop`.

    The tree is walked at both ends: a process that appears meanwhile (a restarted worker
    or OPA) counts whole; one that exits meanwhile cannot be read at the end, so it is
    named in ``exited`` instead of being silently counted as zero.
    """

    root: int
    name: str = "opa"
    _before: dict[int, float] = field(default_factory=dict)
    total_s: float = 0.0
    named_s: float = 0.0
    exited: list[int] = field(default_factory=list)
    appeared: list[int] = field(default_factory=list)

    def start(self) -> list[int]:
        """Read every process of the tree; its pids."""
        pids = process_tree(self.root)
        self._before = cpu_by_process(pids)
        return pids

    def stop(self) -> None:
        """Walk the tree again and add up what each process spent since :meth:`start`."""
        pids = process_tree(self.root)
        after = cpu_by_process(pids)
        is_named = set(named(pids, self.name))
        self.total_s = self.named_s = 0.0
        for pid, seconds in after.items():
            spent = seconds - self._before.get(pid, 0.0)
            self.total_s += spent
            if pid in is_named:
                self.named_s += spent
        self.appeared = sorted(set(after) - set(self._before))
        self.exited = sorted(set(self._before) - set(after))


@dataclass(frozen=True)
class ThreadSched:
    """What the scheduler did with one thread, from ``/proc/<pid>/task/<tid>``: seconds on
    a CPU and seconds runnable but waiting for one (``schedstat``), and its context
    switches, voluntary (it slept: waited for I/O or a lock) and involuntary (it was
    preempted while runnable)."""

    run_s: float
    runqueue_s: float
    voluntary: int
    involuntary: int

    @classmethod
    def read(cls, pid: int, tid: int | None = None) -> ThreadSched | None:
        """Thread ``tid`` of process ``pid`` (its main thread by default); None when gone."""
        task = Path(f"/proc/{pid}/task/{pid if tid is None else tid}")
        try:
            run_ns, wait_ns = (int(x) for x in (task / "schedstat").read_text().split()[:2])
            status = (task / "status").read_text()
        except (OSError, ValueError):
            return None
        switches = dict(
            line.split(":", 1) for line in status.splitlines() if "ctxt_switches" in line
        )
        return cls(
            run_s=run_ns / 1e9,
            runqueue_s=wait_ns / 1e9,
            voluntary=int(switches.get("voluntary_ctxt_switches", "0")),
            involuntary=int(switches.get("nonvoluntary_ctxt_switches", "0")),
        )

    def since(self, before: ThreadSched, window_s: float, requests: int) -> dict[str, float]:
        """The figures of a run: shares of ``window_s`` and switches per request."""
        per = max(1, requests)
        return {
            "busy": round((self.run_s - before.run_s) / window_s, 3),
            "runqueue": round((self.runqueue_s - before.runqueue_s) / window_s, 3),
            "slept_per_req": round((self.voluntary - before.voluntary) / per, 2),
            "preempted_per_req": round((self.involuntary - before.involuntary) / per, 2),
        }


def _clean_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELEASEGATE_")}
    if "RELEASEGATE_OPA" in os.environ:
        env["RELEASEGATE_OPA"] = os.environ["RELEASEGATE_OPA"]
    env.update(extra)
    return env


def create_token(
    state_dir: Path,
    subject: str,
    role: str,
    env: dict[str, str] | None = None,
    *,
    repo: Path = REPO,
    python: str = sys.executable,
) -> str:
    """``releasegate token create`` (of the checkout ``repo``); returns the token."""
    out = subprocess.run(  # noqa: S603 - fixed argv
        [python, "-m", "engine.adapters.cli", "token", "create",
         "--state-dir", str(state_dir), "--subject", subject, "--role", role,
         "--format", "json"],
        capture_output=True, text=True, check=True, cwd=repo, env=_clean_env(env or {}),
    )  # fmt: skip
    return str(json.loads(out.stdout)["token"])


def _wait_until(ready: Callable[[], None], process: subprocess.Popen[Any], what: str) -> None:
    """Until ``ready()`` returns without ``OSError`` (``URLError`` is one), or the process
    exits, or ``START_DEADLINE_S`` passes (the process is then killed)."""
    deadline = time.monotonic() + START_DEADLINE_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            ready()
            return
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{what} did not answer in {START_DEADLINE_S:g} s")


def _wait_http(url: str, process: subprocess.Popen[Any], what: str) -> None:
    def answered() -> None:
        with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - loopback
            pass

    _wait_until(answered, process, f"{what} ({url})")


def _stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Service:
    """A running ``releasegate serve`` with its tokens."""

    process: subprocess.Popen[bytes]
    port: int
    state_dir: Path
    tokens: dict[str, str] = field(default_factory=dict)
    workers: int = 1
    """``serve --workers``: with one, the process's main thread is the event loop."""

    @property
    def pids(self) -> list[int]:
        """The service and its managed OPA."""
        return process_tree(self.process.pid)

    def call(self, method: str, path: str, body: bytes | None, role: str) -> tuple[int, Any]:
        """One request with the role's token; (status, parsed JSON body)."""
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=body, method=method
        )
        req.add_header("Authorization", f"Bearer {self.tokens[role]}")
        if body is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:  # noqa: S310 - loopback
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def stop(self) -> None:
        """SIGTERM and wait (serve closes OPA and the log)."""
        _stop(self.process)


def start_service(
    state_dir: Path,
    *,
    env: dict[str, str] | None = None,
    roles: tuple[str, ...] = ("ci",),
    workers: int = 1,
    repo: Path = REPO,
    python: str = sys.executable,
) -> Service:
    """Tokens first (CLI), then ``releasegate serve [--workers N]`` on a free port; waits.

    ``repo``: the checkout whose code runs (``python -m engine...`` from that directory:
    another revision's worktree, for ``benchmarks.ab``); ``python``: the interpreter that
    runs it (a virtualenv with the project installed)."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    tokens = {
        role: create_token(state_dir, f"bench-{role}", role, env, repo=repo, python=python)
        for role in roles
    }
    port = free_port()
    log = (state_dir.parent / f"serve-{port}.log").open("wb")
    process = subprocess.Popen(  # noqa: S603 - fixed argv
        [python, "-m", "engine.adapters.cli", "serve",
         "--state-dir", str(state_dir), "--port", str(port), "--workers", str(workers)],
        stdout=log, stderr=subprocess.STDOUT, cwd=repo, env=_clean_env(env or {}),
    )  # fmt: skip
    log.close()
    _wait_http(f"http://127.0.0.1:{port}/readyz", process, "releasegate serve")
    return Service(process, port, state_dir, tokens, workers)


@dataclass
class BareOpa:
    """``opa run --server`` on a TCP port, as the baseline."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    socket_path: Path | None = None
    """Also listening on this unix socket (``start_opa(unix_socket=True)``), as the
    service's managed OPA does."""

    @property
    def pids(self) -> list[int]:
        """Just OPA."""
        return [self.process.pid]

    def stop(self) -> None:
        """SIGTERM and wait; remove the socket's directory."""
        _stop(self.process)
        if self.socket_path is not None:
            shutil.rmtree(self.socket_path.parent, ignore_errors=True)

    def log_lines(self) -> int:
        """Lines OPA wrote (console decision logs when enabled)."""
        with self.log_path.open("rb") as f:
            return sum(1 for _ in f)


def start_opa(
    workdir: Path, *, console_log: bool, unix_socket: bool = False, service_processors: bool = False
) -> BareOpa:
    """OPA on the same signed bundle the service loads (its default policy source); with
    ``unix_socket``, on a unix socket too (in a short temporary directory: the path of a
    socket is limited to 107 bytes). With ``service_processors``, as many Go processors
    as the service gives its managed OPA (``engine.runtime.opa_gomaxprocs``), else Go's
    default: one per CPU, the reference engine at full speed on this machine."""
    from engine.config import build_settings
    from engine.engines.opa import find_opa, opa_environment, opa_tuning_args
    from engine.runtime import opa_gomaxprocs

    settings = build_settings()
    port = free_port()
    argv = [
        str(find_opa(settings.opa)), "run", "--server",
        "--addr", f"127.0.0.1:{port}", "--skip-version-check",
        *opa_tuning_args(read_optimized_store=settings.opa_store_read_optimized),
        *settings.policy_source().opa_args(),
    ]  # fmt: skip
    socket_path = None
    if unix_socket:
        socket_path = Path(tempfile.mkdtemp(prefix="rg-bench-opa-")) / "opa.sock"
        argv += ["--addr", f"unix://{socket_path}"]
    if console_log:
        argv += ["--log-level", "info", "--set", "decision_logs.console=true"]
    else:
        argv += ["--log-level", "error"]
    log_path = workdir / f"opa-{port}.log"
    with log_path.open("wb") as log:
        # Same Go collector target as the service's managed OPA: a like-for-like baseline.
        gomaxprocs = opa_gomaxprocs(settings) if service_processors else None
        env = opa_environment(settings.opa_gogc, gomaxprocs)
        process = subprocess.Popen(  # noqa: S603 - fixed argv
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
    _wait_http(f"http://127.0.0.1:{port}/health?bundles", process, "opa")
    return BareOpa(process, port, log_path, socket_path)


@dataclass
class Relay:
    """``python -m benchmarks.relay``: the least front of an admission (its docstring)."""

    process: subprocess.Popen[bytes]
    port: int
    state_dir: Path

    def stop(self) -> None:
        """SIGTERM and wait (the relay closes its log)."""
        _stop(self.process)


def _wait_port(port: int, process: subprocess.Popen[Any], what: str) -> None:
    def accepted() -> None:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()

    _wait_until(accepted, process, f"{what} (port {port})")


def start_relay(workdir: Path, *, opa: BareOpa, opa_input: Path, record: Path) -> Relay:
    """The relay on a free port in front of ``opa`` (on its unix socket: start it with
    ``unix_socket=True``), logging to ``workdir/relay-<port>``."""
    if opa.socket_path is None:
        raise ValueError("the relay reaches OPA on a unix socket, as the service does")
    port = free_port()
    state_dir = workdir / f"relay-{port}"
    log = (workdir / f"relay-{port}.log").open("wb")
    process = subprocess.Popen(  # noqa: S603 - fixed argv
        [sys.executable, "-m", "benchmarks.relay", "--port", str(port),
         "--opa-socket", str(opa.socket_path), "--opa-input", str(opa_input),
         "--record", str(record), "--state-dir", str(state_dir)],
        stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=_clean_env({}),
    )  # fmt: skip
    log.close()
    _wait_port(port, process, "benchmarks.relay")
    return Relay(process, port, state_dir)
