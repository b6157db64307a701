"""The benchmark's process accounting: which processes of a target's tree are OPA."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from benchmarks.procs import (
    CLK_TCK,
    ThreadSched,
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


def _burn(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_thread_sched_reads_what_one_thread_ran_and_slept() -> None:
    tid: list[int] = []
    go, done, leave = threading.Event(), threading.Event(), threading.Event()

    def work() -> None:
        tid.append(threading.get_native_id())
        go.wait(10)
        _burn(0.2)
        for _ in range(20):
            time.sleep(0.002)
        done.set()
        leave.wait(10)

    thread = threading.Thread(target=work)
    thread.start()
    try:
        while not tid:
            time.sleep(0.001)
        before = ThreadSched.read(os.getpid(), tid[0])
        assert before is not None
        go.set()
        assert done.wait(10)
        after = ThreadSched.read(os.getpid(), tid[0])
        assert after is not None
        assert after.run_s - before.run_s >= 0.19
        assert after.voluntary - before.voluntary >= 20
    finally:
        go.set()
        leave.set()
        thread.join(10)
    assert ThreadSched.read(os.getpid(), tid[0]) is None  # gone with its thread


def test_thread_sched_sees_a_thread_preempted_by_a_process_on_its_cpu() -> None:
    cpu = min(os.sched_getaffinity(0))
    burner = subprocess.Popen(  # noqa: S603 - fixed argv
        [sys.executable, "-c", "while True: pass"],
        preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
    )
    mine = threading.get_native_id()
    mask = os.sched_getaffinity(mine)
    try:
        os.sched_setaffinity(mine, {cpu})
        before = ThreadSched.read(os.getpid(), mine)
        started = time.monotonic()
        _burn(0.2)  # sharing one CPU with the burner: about 0.4 s of wall time
        window = time.monotonic() - started
        after = ThreadSched.read(os.getpid(), mine)
    finally:
        os.sched_setaffinity(mine, mask)
        burner.kill()
        burner.wait(10)
    assert before is not None and after is not None
    figures = after.since(before, window, requests=10)
    assert after.involuntary > before.involuntary
    assert figures["preempted_per_req"] > 0
    assert 0.05 < figures["runqueue"] and 0 < figures["busy"] <= 1.05


def test_thread_sched_figures_are_shares_of_the_run_and_counts_per_request() -> None:
    before = ThreadSched(run_s=1.0, runqueue_s=0.5, voluntary=10, involuntary=4)
    after = ThreadSched(run_s=1.9, runqueue_s=0.6, voluntary=30, involuntary=34)
    assert after.since(before, window_s=1.0, requests=10) == {
        "busy": 0.9,
        "runqueue": 0.1,
        "slept_per_req": 2.0,
        "preempted_per_req": 3.0,
    }
