"""One measured run: load generator process(es) against a target, CPU counted around it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.procs import (
    REPO,
    ThreadSched,
    TreeCpu,
    connections_per_process,
    machine_stat_seconds,
)
from engine.api.timing import parse_server_timing


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of an ascending list; 0 for none."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), round(q / 100.0 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def server_timing_parts(values: list[str | None]) -> dict[str, dict[str, float]]:
    """p50 and p99 (ms) of each part the answers' ``Server-Timing`` named, and ``rest``:
    ``total - opa - log`` of each answer that has all three (the service's own work before
    the response: the route, the input, the Decision, waiting for the event loop). Empty
    when no answer had the header (bare OPA, the least front)."""
    parts: dict[str, list[float]] = {}
    for value in values:
        if value is None:
            continue
        timing = parse_server_timing(value)
        for name, ms in timing.items():
            parts.setdefault(name, []).append(ms)
        if {"opa", "log", "total"} <= timing.keys():
            rest = timing["total"] - timing["opa"] - timing["log"]
            parts.setdefault("rest", []).append(rest)
    return {
        name: {
            "p50_ms": round(percentile(sorted(ms), 50), 3),
            "p99_ms": round(percentile(sorted(ms), 99), 3),
        }
        for name, ms in parts.items()
    }


# Below 200 clock ticks (at 100 Hz) the rounding of /proc/stat's and each process's tick
# counters is no longer small next to the window; the smoke test's runs last a few ticks.
MIN_OTHERS_WINDOW_S = 2.0


def summarize(
    name: str,
    raw: list[dict[str, Any]],
    target_cpu_s: float,
    extra: dict[str, Any],
    *,
    opa_cpu_s: float = 0.0,
    machine_busy_s: float | None = None,
    machine_steal_s: float | None = None,
    window_s: float | None = None,
) -> dict[str, Any]:
    """Merge the generators' raw results into one row of figures.

    ``opa_cpu_s`` is the part of ``target_cpu_s`` spent in OPA processes (the service's
    managed OPA, or all of it for a bare OPA). ``machine_busy_s`` is what the whole machine
    spent over the ``window_s`` seconds of the run: what neither the target nor the
    generators spent is the load of other processes (``other_cpu_cores``, in cores). It is
    None for a run shorter than ``MIN_OTHERS_WINDOW_S``: every figure in the subtraction
    counts whole clock ticks, so a few ticks of rounding over a window of a few ticks gave
    "2.61 cores" on a 2-core machine. ``machine_steal_s`` is what the hypervisor took
    (``steal_cores``: CPU the virtual machine was ready to use and did not get; counted in
    the machine's busy time, so in ``other_cpu_cores`` as far as the processes' own
    accounting leaves it out), under the same rule.
    """
    latencies = sorted(x for r in raw for x in r["latencies_ms"])
    statuses: dict[str, int] = {}
    for r in raw:
        for key, count in r["statuses"].items():
            statuses[key] = statuses.get(key, 0) + count
    elapsed = max(r["elapsed_s"] for r in raw)
    n = len(latencies)
    gen_cpu = sum(r["cpu_s"] for r in raw)
    ok = statuses.get(str(extra.get("expect_status", 200)), 0)
    return {
        "name": name,
        "requests": n,
        "ok": ok,
        "statuses": statuses,
        "elapsed_s": round(elapsed, 3),
        "per_s": round(ok / elapsed, 1) if elapsed > 0 else 0.0,
        "p50_ms": round(percentile(latencies, 50), 3),
        "p95_ms": round(percentile(latencies, 95), 3),
        "p99_ms": round(percentile(latencies, 99), 3),
        "max_ms": round(latencies[-1], 3) if latencies else 0.0,
        "target_cpu_s": round(target_cpu_s, 3),
        "cpu_ms_per_req": round(target_cpu_s * 1000 / n, 3) if n else 0.0,
        "opa_cpu_ms_per_req": round(opa_cpu_s * 1000 / n, 3) if n else 0.0,
        "loadgen_cpu_s": round(gen_cpu, 3),
        "loadgen_cpu_ms_per_req": round(gen_cpu * 1000 / n, 3) if n else 0.0,
        "other_cpu_cores": (
            round(max(0.0, machine_busy_s - target_cpu_s - gen_cpu) / window_s, 2)
            if machine_busy_s is not None and window_s and window_s >= MIN_OTHERS_WINDOW_S
            else None
        ),
        "steal_cores": (
            round(machine_steal_s / window_s, 2)
            if machine_steal_s is not None and window_s and window_s >= MIN_OTHERS_WINDOW_S
            else None
        ),
        "first_error": next((r["first_error"] for r in raw if r["first_error"]), None),
        **(
            {"server_timing": timing}
            if (timing := server_timing_parts([v for r in raw for v in r.get("server_timing", [])]))
            else {}
        ),
        **{k: v for k, v in extra.items() if k != "expect_status"},
    }


def run_load(
    name: str,
    *,
    target_pid: int,
    port: int,
    path: str,
    body_file: Path,
    headers: dict[str, str],
    concurrency: int,
    requests: int | None,
    duration: float | None,
    rate: float | None = None,
    loadgen_procs: int = 1,
    warmup: int = 2,
    expect_status: int = 200,
    expect_text: str | None = None,
    method: str = "POST",
    event_loop: bool = False,
) -> dict[str, Any]:
    """Start the generator(s), wait until warm, count CPU of ``target_pid``'s tree, run.

    ``event_loop``: ``target_pid``'s main thread is the service's event loop (one process);
    the row then says what the scheduler did with it (``ThreadSched``): how much of the run
    it was on a CPU, how much it waited for one, and how often per request it slept or was
    preempted. A loop that is busy nearly all the time is the bound of the run."""
    procs = max(1, min(loadgen_procs, concurrency))
    gens = []
    for i in range(procs):
        share_c = concurrency // procs + (1 if i < concurrency % procs else 0)
        spec = {
            "host": "127.0.0.1",
            "port": port,
            "path": path,
            "body_file": str(body_file),
            "headers": headers,
            "concurrency": share_c,
            "requests": None if requests is None else max(1, requests * share_c // concurrency),
            "duration": duration,
            "rate": None if rate is None else rate * share_c / concurrency,
            "warmup": warmup,
            "expect_status": expect_status,
            "expect_text": expect_text,
            "method": method,
        }
        gen = subprocess.Popen(  # noqa: S603 - fixed argv
            [sys.executable, "-m", "benchmarks.loadgen"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO,
        )  # fmt: skip
        assert gen.stdin is not None and gen.stdout is not None
        gen.stdin.write(json.dumps(spec) + "\n")
        gen.stdin.flush()
        gens.append(gen)
    for gen in gens:
        assert gen.stdout is not None
        line = gen.stdout.readline().strip()
        if line != "READY":
            for g in gens:
                g.kill()
            raise RuntimeError(f"load generator failed during warm-up: {line!r}")
    tree = TreeCpu(target_pid)
    # Every connection is open since the warm-up: which process of the target holds each.
    held = connections_per_process(tree.start(), port)
    loop_before = ThreadSched.read(target_pid) if event_loop else None
    (busy_before, steal_before), started = machine_stat_seconds(), time.monotonic()
    for gen in gens:
        assert gen.stdin is not None
        gen.stdin.write("GO\n")
        gen.stdin.flush()
    raw = []
    for gen in gens:
        assert gen.stdout is not None
        raw.append(json.loads(gen.stdout.readline()))
    tree.stop()
    loop_after = ThreadSched.read(target_pid) if event_loop else None
    busy_after, steal_after = machine_stat_seconds()
    window_s = time.monotonic() - started
    for gen in gens:
        gen.wait()
    extra: dict[str, Any] = {}
    if loop_before is not None and loop_after is not None:
        requests_done = sum(len(r["latencies_ms"]) for r in raw)
        extra["event_loop"] = loop_after.since(loop_before, window_s, requests_done)
    return summarize(
        name,
        raw,
        tree.total_s,
        {
            "concurrency": concurrency,
            "rate": rate,
            "loadgen_procs": procs,
            "expect_status": expect_status,
            "expect_text": expect_text,
            "processes_appeared": len(tree.appeared),
            "processes_exited": len(tree.exited),
            "connections_per_process": sorted(held.values(), reverse=True),
            **extra,
        },
        opa_cpu_s=tree.named_s,
        machine_busy_s=busy_after - busy_before,
        machine_steal_s=steal_after - steal_before,
        window_s=window_s,
    )
