"""``python -m benchmarks``: run the scenarios, print one table each, write the JSON."""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.procs import REPO, machine_info
from benchmarks.scenarios import SCENARIOS, Options
from engine.log.bench import writers_label

P99_TARGET_MS = 15.0
"""Scenario 1's latency target (issue 9)."""

TARGETS = {
    "core": "target: >= 500 decisions/s (stretch 800), "
    f"p99 <= {P99_TARGET_MS:g} ms at 16 clients, >= 0.35 x bare OPA",
    "admission": "target: p99 <= 5 ms at 100 requests/s",
    "cold": "target: >= 120 decisions/s",
    "log": "",
    "stages": "",
}

ISSUE_PARTS = {
    "parse": "0.09",
    "validate": "0.13",
    "append": "0.15 + 0.17",
}
"""The part costs issue 9 quotes, next to the stage they correspond to (ms)."""


STEAL_NOTE_CORES = 0.05
"""Runs with at least this much CPU taken by the hypervisor get a note under their table."""


def _steal_note(rows: list[dict[str, Any]]) -> list[str]:
    stolen = [r for r in rows if (r.get("steal_cores") or 0.0) >= STEAL_NOTE_CORES]
    if not stolen:
        return []
    which = ", ".join(f"{r['name']} run {r['run']} ({r['steal_cores']:.2f})" for r in stolen)
    return [
        f"note: the hypervisor took >= {STEAL_NOTE_CORES} cores during {len(stolen)} of "
        f"{len(rows)} runs: {which}; their rates and tails say as much about the host as "
        "about the code"
    ]


def format_cores(value: float | None) -> str:
    """A figure in cores, ``-`` when there is none."""
    return "-" if value is None else f"{value:.2f}"


Column = tuple[str, str, Callable[[dict[str, Any]], Any]]
"""A table column: its title, its format spec (width and alignment), its value in a row."""


def _field(key: str) -> Callable[[dict[str, Any]], Any]:
    return lambda row: row[key]


def _table(columns: list[Column], rows: list[dict[str, Any]]) -> list[str]:
    """The header, a rule, then one line per row, in the rows' order."""
    head = " ".join(format(title, spec) for title, spec, _ in columns)
    cells = [" ".join(format(value(row), spec) for _, spec, value in columns) for row in rows]
    return [head, "-" * len(head), *cells]


def _row_table(rows: list[dict[str, Any]]) -> list[str]:
    width = max([28, *(len(r["name"]) for r in rows)])
    columns: list[Column] = [
        ("target", f"<{width}", _field("name")),
        ("run", ">3", _field("run")),
        ("reqs", ">6", _field("requests")),
        ("ok/s", ">8", _field("per_s")),
        ("p50 ms", ">8", _field("p50_ms")),
        ("p95 ms", ">8", _field("p95_ms")),
        ("p99 ms", ">8", _field("p99_ms")),
        ("cpu ms/req", ">10", _field("cpu_ms_per_req")),
        ("opa ms/req", ">10", _field("opa_cpu_ms_per_req")),
        ("gen ms/req", ">10", _field("loadgen_cpu_ms_per_req")),
        ("others", ">6", lambda r: format_cores(r.get("other_cpu_cores"))),
        ("steal", ">5", lambda r: format_cores(r.get("steal_cores"))),
    ]
    table = _table(columns, rows)
    lines = table[:2]
    for r, line in zip(rows, table[2:], strict=True):
        lines.append(line)
        bad = {k: v for k, v in r["statuses"].items() if k != "200"}
        if bad:
            lines.append(f"    non-200 answers: {bad}; first: {r['first_error']}")
        if r.get("server_timing"):
            lines.append(f"    {inside_the_service(r['server_timing'])}")
        if r.get("event_loop"):
            lines.append(f"    {the_event_loop(r['event_loop'])}")
        if len(r.get("connections_per_process", [])) > 1:
            split = "/".join(str(n) for n in r["connections_per_process"])
            lines.append(f"    connections per worker: {split}")
        if r.get("processes_exited") or r.get("processes_appeared"):
            lines.append(
                f"    process tree changed during the run: {r.get('processes_exited', 0)} "
                f"exited (their CPU is missing), {r.get('processes_appeared', 0)} appeared"
            )
    return lines


def the_event_loop(loop: dict[str, float]) -> str:
    """What the scheduler did with the service's event loop thread during a run, in one line."""
    return (
        f"event loop thread: on a CPU {loop['busy']:.2f} of the run, waiting for one "
        f"{loop['runqueue']:.2f}; per request slept {loop['slept_per_req']:.2f}, "
        f"preempted {loop['preempted_per_req']:.2f} times"
    )


def inside_the_service(parts: dict[str, dict[str, float]]) -> str:
    """The ``Server-Timing`` parts of a run, p50/p99 each, in one line."""
    order: list[str] = [n for n in ("opa", "log", "rest", "total") if n in parts]
    order += sorted(set(parts) - set(order))
    cells = ", ".join(f"{n} {parts[n]['p50_ms']}/{parts[n]['p99_ms']}" for n in order)
    return f"inside the service (Server-Timing), p50/p99 ms: {cells}"


def _log_table(rows: list[dict[str, Any]]) -> list[str]:
    columns: list[Column] = [
        ("backend", "<11", _field("backend")),
        ("writers", "<18", writers_label),
        ("run", ">3", _field("run")),
        ("appends", ">7", _field("appends")),
        ("appends/s", ">10", _field("appends_per_s")),
        ("p50 ms", ">8", _field("p50_ms")),
        ("p99 ms", ">8", _field("p99_ms")),
    ]
    return _table(columns, rows)


def _commit_floor_table(rows: list[dict[str, Any]]) -> list[str]:
    """Scenario 2's disk floor: the admission record's durable commit alone, same rate."""
    columns: list[Column] = [
        ("the log alone (engine.log.commit_floor)", "<40",
         lambda _: "durable commit of the same record"),
        ("run", ">3", _field("run")),
        ("commits", ">7", _field("requests")),
        ("per s", ">7", _field("per_s")),
        ("p50 ms", ">8", _field("p50_ms")),
        ("p95 ms", ">8", _field("p95_ms")),
        ("p99 ms", ">8", _field("p99_ms")),
        ("max ms", ">8", _field("max_ms")),
        ("cpu ms", ">7", _field("cpu_ms_per_req")),
    ]  # fmt: skip
    return [
        *_table(columns, rows),
        "the admission's record appended alone to a new SQLite log on the same disk after the "
        "runs above, one transaction each\n(begin, rows, COMMIT with its fsync; sealing "
        "untimed): what a lone decision waits for before it may be returned",
    ]


def _stage_table(result: dict[str, Any]) -> list[str]:
    runs = result["runs"]
    head = f"{'stage (median CPU per call, one thread, no load)':<78}"
    head += "".join(f" {'run ' + str(i + 1):>8}" for i in range(len(runs))) + f" {'issue 9':>12}"
    lines = [head, "-" * len(head)]
    for stage in result["stages"]:
        key = stage["key"]
        cells = "".join(f" {r['ms'].get(key, '-'):>8}" for r in runs)
        lines.append(f"{stage['label']:<78}{cells} {ISSUE_PARTS.get(key, ''):>12}")
    calls = runs[0]["iterations"] if runs else 0
    lines.append(
        f"ms per call, {calls} calls each; 'append' excludes 'record'; "
        "the HTTP layer: GET /healthz in scenario 1; scenario 1's service CPU (cpu - opa) "
        "minus 'app': uvicorn, the sockets and the wake-ups"
    )
    return lines


def _closed_loop_floor(clients: int) -> str:
    """What the closed loop itself implies for the p99 target (Little's law)."""
    needed = math.ceil(clients / (P99_TARGET_MS / 1000.0))
    return (
        f"closed loop, {clients} clients, no think time: mean latency = {clients} / "
        f"throughput (Little's law), so a p99 <= {P99_TARGET_MS:g} ms needs >= "
        f"{needed:,} decisions/s"
    )


def render(name: str, result: dict[str, Any]) -> str:
    """One scenario's table."""
    title = {
        "core": "Scenario 1: core decision (verification cache warm)",
        "admission": "Scenario 2: admission fast path (a prior signed allow exists)",
        "cold": "Scenario 3: cold evidence",
        "log": "Scenario 4: decision log appends alone",
        "stages": "Stages: where the CPU of one decision goes (in process)",
    }[name]
    lines = [f"== {title}"]
    if "request_bytes" in result:
        lines.append(f"request body: {result['request_bytes']} bytes")
    if "opa_input_bytes" in result:
        lines.append(f'OPA input body ({{"input": doc}}): {result["opa_input_bytes"]} bytes')
    if "method" in result:
        lines.append(f"method: {result['method']}")
    if name == "admission":
        lines.append(f"paced at {result['rate']} requests/s; latency from the scheduled send")
    if name == "stages":
        return "\n".join(lines + _stage_table(result))
    if name == "log":
        lines += _log_table(result["runs"])
    else:
        lines += _row_table(result["runs"]) + _steal_note(result["runs"])
    if result.get("commit_floor"):
        lines += _commit_floor_table(result["commit_floor"])
    if "ratio_releasegate_to_bare_opa" in result:
        ratio = result["ratio_releasegate_to_bare_opa"]
        lines.append(f"releasegate / bare OPA throughput: {ratio}")
    if result.get("ratio_workers_to_bare_opa") is not None:
        ratio = result["ratio_workers_to_bare_opa"]
        lines.append(f"releasegate with workers / bare OPA throughput: {ratio}")
    if result.get("ratio_affinity_to_bare_opa") is not None:
        ratio = result["ratio_affinity_to_bare_opa"]
        lines.append(f"releasegate with cpu_affinity auto / bare OPA throughput: {ratio}")
    costs = result.get("opa_cpu_ms_per_evaluation")
    if costs and None not in costs.values():
        lines.append(
            f"OPA's CPU per evaluation: {costs['bare_saturated']} ms saturated (bare OPA), "
            f"{costs['bare_paced']} ms paced at releasegate's rate, "
            f"{costs['in_releasegate']} ms inside releasegate"
        )
    if TARGETS[name]:
        lines.append(TARGETS[name])
    if name == "core" and result["runs"]:
        lines.append(_closed_loop_floor(int(result["runs"][0]["concurrency"])))
    lines.append("cpu ms/req: service (+ its OPA) or OPA process CPU / requests; opa ms/req: "
                 "the OPA part of it; gen ms/req: load generator CPU / requests; others: "
                 "cores busy with other processes on this machine during the run "
                 "(anything else running here, the benchmark's own bookkeeping); steal: "
                 "cores the hypervisor took from this virtual machine; inside the service: "
                 "the answers' Server-Timing, what the service's OPA evaluation, its log's "
                 "record and the whole request took inside its process, and the rest of it "
                 "(total - opa - log)")  # fmt: skip
    return "\n".join(lines)


def _postgres_url() -> str:
    out = subprocess.run(  # noqa: S603 - fixed argv
        ["bash", str(REPO / "scripts" / "start-postgres.sh")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout.strip().splitlines()[-1]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark the real releasegate service against bare OPA (issue 9).",
    )
    p.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    p.add_argument(
        "--duration",
        type=float,
        default=None,
        help="seconds per measured run (default 10 when --requests is not given)",
    )
    p.add_argument("--requests", type=int, default=None, help="requests per measured run")
    p.add_argument("--concurrency", type=int, default=16, help="closed-loop clients")
    p.add_argument("--repeat", type=int, default=2, help="measured runs per target")
    p.add_argument(
        "--loadgen-procs",
        type=int,
        default=1,
        help="load generator processes (the clients are split between them)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=2,
        help="scenario 1 also measures `serve --workers N` (1: only the one-process service)",
    )
    p.add_argument("--admission-rate", type=float, default=100.0)
    p.add_argument("--log-appends", type=int, default=2000, help="appends per log config")
    p.add_argument(
        "--postgres",
        action="store_true",
        help="also PostgreSQL (scripts/start-postgres.sh, or RELEASEGATE_TEST_POSTGRES_URL)",
    )
    p.add_argument(
        "--json",
        type=Path,
        default=None,
        help="results file (default bench-results/<timestamp>.json)",
    )
    p.add_argument("--workdir", type=Path, default=None, help="keep state and logs here")
    args = p.parse_args(argv)
    if args.duration is None and args.requests is None:
        args.duration = 10.0
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the chosen scenarios."""
    args = parse_args(argv)
    started = datetime.now(UTC)
    machine = machine_info()
    pg_url = None
    if args.postgres:
        pg_url = os.environ.get("RELEASEGATE_TEST_POSTGRES_URL") or _postgres_url()
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    print(
        f"releasegate benchmark {started:%Y-%m-%d %H:%M:%S}Z  nproc {machine['nproc']}  "
        f"load average {' '.join(f'{x:.2f}' for x in machine['loadavg_start'])}  "
        f"{machine['cpu_model']}  Python {machine['python']} ({machine['python_executable']})",
        flush=True,
    )
    print(
        f"closed loop: {args.concurrency} clients, "
        + (f"{args.requests} requests" if args.requests else f"{args.duration} s")
        + f" per run, {args.repeat} run(s) per target, {args.loadgen_procs} generator process(es)",
        flush=True,
    )
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="releasegate-bench-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        for name in names:
            opts = Options(
                workdir=workdir / name,
                duration=args.duration,
                requests=args.requests,
                concurrency=args.concurrency,
                repeat=args.repeat,
                loadgen_procs=args.loadgen_procs,
                postgres_url=pg_url,
                admission_rate=args.admission_rate,
                log_appends=args.log_appends,
                workers=args.workers,
            )
            opts.workdir.mkdir(parents=True, exist_ok=True)
            t0 = time.monotonic()
            result = SCENARIOS[name](opts)
            result["loadavg_after"] = list(os.getloadavg())
            result["wall_s"] = round(time.monotonic() - t0, 1)
            results[name] = result
            print("\n" + render(name, result), flush=True)
    out = args.json or REPO / "bench-results" / f"{started:%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "started": started.isoformat(),
        "machine": machine,
        "loadavg_end": list(os.getloadavg()),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "postgres": pg_url is not None,
        "scenarios": results,
    }
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nresults: {out}")
    return 0
