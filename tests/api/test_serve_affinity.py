"""``serve --cpu-affinity auto`` on a real service: its threads stay on one CPU and its managed
OPA on the others, including an OPA the supervisor starts after the first one was killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.procs import named, process_tree
from engine.affinity import CpuPlan, plan_for, usable_cpus
from tests.api.conftest import dev_request
from tests.api.test_serve import Server, create_token, start_server, stop
from tests.conftest import REPO

RESTART_DEADLINE_S = 60.0


def _masks(pid: int) -> set[frozenset[int]]:
    """The distinct CPU masks of the threads of ``pid``."""
    return {frozenset(os.sched_getaffinity(int(t))) for t in os.listdir(f"/proc/{pid}/task")}


def _opa_children(pid: int) -> list[int]:
    """The processes named ``opa`` under ``pid``."""
    return named(process_tree(pid)[1:], "opa")


def _decide(server: Server, token: str) -> str:
    status, _, body = server.call("POST", "/v1/decisions", token=token, body=dev_request())
    assert status == 200, body
    return str(body["verdict"])


def test_auto_places_the_service_and_its_opa_and_keeps_a_restarted_opa_in_place(
    tmp_path: Path, policy_dir: Path, opa_binary: Path
) -> None:
    plan = plan_for(usable_cpus())
    state_dir = tmp_path / "state"
    token = create_token(state_dir, "ci-pipeline", "ci")
    env = {"RELEASEGATE_BUNDLE": str(policy_dir), "RELEASEGATE_OPA": str(opa_binary)}
    server = start_server(state_dir, env, args=("--cpu-affinity", "auto"))
    try:
        if plan is not None:
            _check_placement(server, token, plan)
        else:
            assert "cpus:" not in server.summary
    finally:
        code, err = stop(server)
    assert code == 0, err
    # With one usable CPU there is nothing to split, and serve says so instead.
    assert ("fewer than two usable CPUs" in err) == (plan is None)


def _check_placement(server: Server, token: str, plan: CpuPlan) -> None:
    assert f"cpus:        {plan.describe()} (cpu_affinity auto)" in server.summary
    verdict = _decide(server, token)  # the log writer and the OPA client are running now
    assert _masks(server.process.pid) == {plan.service}
    (opa,) = _opa_children(server.process.pid)
    assert _masks(opa) == {plan.opa}

    os.kill(opa, signal.SIGKILL)
    deadline = time.monotonic() + RESTART_DEADLINE_S  # never asserted on
    restarted: list[int] = []
    while time.monotonic() < deadline:
        restarted = [p for p in _opa_children(server.process.pid) if p != opa]
        if restarted and server.call("GET", "/readyz")[0] == 200:
            break
        time.sleep(0.1)
    assert len(restarted) == 1, "the supervisor did not restart OPA"
    assert _masks(restarted[0]) == {plan.opa}
    assert _decide(server, token) == verdict
    assert _masks(server.process.pid) == {plan.service}


def test_with_one_usable_cpu_serve_warns_and_pins_nothing() -> None:
    # A process restricted to one CPU (as by taskset or a one-CPU cpuset) asks for auto.
    cpu = min(usable_cpus())
    code = (
        f"import os; os.sched_setaffinity(0, {{{cpu}}})\n"
        "from engine.adapters.commands.serve import place_on_cpus\n"
        "from engine.config import build_settings\n"
        "plan = place_on_cpus(build_settings(cpu_affinity='auto'))\n"
        "print(plan, sorted(os.sched_getaffinity(0)))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELEASEGATE_")}
    proc = subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env,
        timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["None", f"[{cpu}]"]
    assert "cpu_affinity auto: fewer than two usable CPUs, nothing to split" in proc.stderr


def test_off_leaves_both_on_every_usable_cpu(
    tmp_path: Path, policy_dir: Path, opa_binary: Path
) -> None:
    state_dir = tmp_path / "state"
    env = {"RELEASEGATE_BUNDLE": str(policy_dir), "RELEASEGATE_OPA": str(opa_binary)}
    server = start_server(state_dir, env)
    try:
        assert "cpus:" not in server.summary
        (opa,) = _opa_children(server.process.pid)
        assert _masks(server.process.pid) == _masks(opa) == {usable_cpus()}
    finally:
        code, err = stop(server)
    assert code == 0, err
