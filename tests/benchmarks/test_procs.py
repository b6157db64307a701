"""The benchmark's process accounting: which processes of a target's tree are OPA."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.procs import (
    CLK_TCK,
    TreeCpu,
    busy_seconds,
    connections_per_process,
    cpu_by_process,
    cpu_seconds,
    machine_busy_seconds,
    machine_stat_seconds,
    named,
    process_tree,
    steal_seconds,
)


def test_named_finds_the_opa_processes_of_a_tree(opa_binary: Path) -> None:
    # A shell whose child is a real `opa` (the shape of the service and its managed OPA).
    parent = subprocess.Popen(  # noqa: S603 - fixed argv
        ["/bin/sh", "-c", f"'{opa_binary}' run --server --addr 127.0.0.1:0 & wait"]
    )
    try:
        tree: list[int] = []
        for _ in range(100):
            tree = process_tree(parent.pid)
            if named(tree, "opa"):
                break
            time.sleep(0.05)
        opa = named(tree, "opa")
        assert len(opa) == 1 and opa[0] != parent.pid
        assert named([parent.pid, os.getpid()], "opa") == []
        assert named([2**22 + 12345], "opa") == []  # no such process: skipped, no error
    finally:
        for pid in named(process_tree(parent.pid), "opa"):
            os.kill(pid, 15)
        parent.wait(timeout=10)


def test_tree_cpu_counts_a_process_that_appears_and_names_one_that_exits() -> None:
    # A shell with a `sleep` child; on "go" it starts a Python child that burns 0.3 s of CPU.
    burn = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\n"
    script = 'sleep 30 & read go; "$PY" -c "$BURN" & wait'
    env = dict(os.environ, PY=sys.executable, BURN=burn + "time.sleep(30)")
    parent = subprocess.Popen(  # noqa: S603 - fixed argv
        ["/bin/sh", "-c", script], stdin=subprocess.PIPE, env=env, text=True
    )
    assert parent.stdin is not None
    try:
        first = _wait_for_children(parent.pid, 1)
        tree = TreeCpu(parent.pid, name=Path(sys.executable).name[:15])
        tree.start()
        os.kill(first[0], 15)  # `sleep` exits during the measurement
        parent.stdin.write("go\n")
        parent.stdin.flush()
        newcomer = _wait_for_children(parent.pid, 1, exclude=first)
        deadline = time.monotonic() + 20
        while cpu_seconds(newcomer) < 0.3 and time.monotonic() < deadline:
            time.sleep(0.05)
        tree.stop()
        assert tree.exited == first
        assert tree.appeared == newcomer
        assert tree.named_s >= 0.29 and tree.total_s >= tree.named_s
    finally:
        for pid in process_tree(parent.pid)[1:]:
            os.kill(pid, 9)
        parent.kill()
        parent.wait(timeout=10)
        parent.stdin.close()


def _wait_for_children(pid: int, count: int, exclude: list[int] | None = None) -> list[int]:
    """The first ``count`` live descendants of ``pid`` not in ``exclude``."""
    for _ in range(200):
        found = [p for p in process_tree(pid) if p != pid and p not in (exclude or [])]
        found = [p for p in found if cpu_by_process([p])]
        if len(found) >= count:
            return found[:count]
        time.sleep(0.05)
    raise AssertionError(f"process {pid} did not start {count} children")


def test_connections_per_process_counts_the_accepted_side_of_a_port() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    accepted = [listener.accept()[0] for _ in range(3)]
    try:
        # The clients' sockets are in this process too, but their local port is another one.
        assert connections_per_process([os.getpid()], port) == {os.getpid(): 3}
        accepted[0].close()
        clients[0].close()
        assert connections_per_process([os.getpid()], port) == {os.getpid(): 2}
        assert connections_per_process([os.getpid()], port + 1 if port < 65535 else 1) == {}
    finally:
        for s in clients + accepted + [listener]:
            s.close()


# The head of a real /proc/stat (this machine, 2 vCPUs).
PROC_STAT = """cpu  2153539 0 370842 7799346 22817 0 29511 3469 0 0
cpu0 1076211 0 185519 3899613 11462 0 19204 1711 0 0
cpu1 1077327 0 185322 3899733 11355 0 10306 1757 0 0
intr 845044455 0 9 0 0 0 0 0 0 0
"""


def test_busy_seconds_counts_every_state_but_idle_and_iowait() -> None:
    busy = 2153539 + 0 + 370842 + 0 + 29511 + 3469  # user nice system irq softirq steal
    counted = busy_seconds(PROC_STAT)
    assert counted == busy / CLK_TCK
    with pytest.raises(ValueError, match="cpu"):
        busy_seconds("intr 1 2 3\n")


def test_steal_is_the_eighth_state_of_the_cpu_line() -> None:
    assert steal_seconds(PROC_STAT) == 3469 / CLK_TCK
    with pytest.raises(ValueError, match="cpu"):
        steal_seconds("cpu0 1 2 3 4 5 6 7 8\n")


def test_busy_and_steal_come_from_one_reading() -> None:
    busy, steal = machine_stat_seconds()
    assert 0 <= steal <= busy <= machine_busy_seconds()


def test_this_machine_is_busy_for_part_of_its_time() -> None:
    busy = machine_busy_seconds()
    states = Path("/proc/stat").read_text().splitlines()[0].split()[1:9]
    total = sum(int(v) for v in states) / CLK_TCK  # read later: only grew meanwhile
    assert 0 < busy < total
