"""What waking another process costs on this machine: a round trip over a unix socket to a
peer that sleeps in ``epoll_wait``, after an idle pause, with the peer on the same CPU as
the sender, on another CPU, or wherever the kernel puts it.

Every admission crosses processes this way (generator to service, service to OPA and
back, service to generator), each time into a process that went idle since its last
request, as paced requests find them. On a virtual machine whose idle vCPUs halt at once
(``haltpoll.guest_halt_poll_ns=0`` here), a wake-up that lands on another vCPU goes
through the hypervisor::

    python -m benchmarks.wakeups                      # 2,000 round trips per placement
    python -m benchmarks.wakeups --count 500 --pause-ms 10 --json wakeups.json

It prints, per placement, the sender's ``send`` (which wakes the peer) and the whole round
trip (the 1,600-byte request, the peer's reply, the sender woken by it), p50 / p90 / p99
in microseconds. The placements are alternated, ``--rounds`` times, so that a slow minute
of the host falls on all of them. Placements that need two CPUs are left out on one.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import socket
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.measure import percentile

REQUEST = b"x" * 1600
"""About the size of an admission's input document sent to OPA."""

PLACEMENTS = ("same CPU", "other CPU", "unpinned")


def _peer(sock: socket.socket, cpu: int | None) -> None:
    """Answer each request with two bytes until the socket closes (in the forked child)."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    with selectors.EpollSelector() as sel:
        sel.register(sock, selectors.EVENT_READ)
        while True:
            sel.select()
            if not sock.recv(65536):
                return
            sock.sendall(b"ok")


def round_trips(placement: str, count: int, pause_s: float) -> dict[str, list[float]]:
    """``count`` paced round trips to a forked peer placed as ``placement`` says (µs)."""
    cpus = sorted(os.sched_getaffinity(0))
    mine = cpus[0]
    peer_cpu = {"same CPU": mine, "other CPU": cpus[1] if len(cpus) > 1 else None}
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    before = os.sched_getaffinity(0)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child; its work is what the parent times
        try:
            ours.close()
            _peer(theirs, peer_cpu.get(placement))
        finally:
            os._exit(0)
    theirs.close()
    sends: list[float] = []
    trips: list[float] = []
    try:
        if placement != "unpinned":
            os.sched_setaffinity(0, {mine})
        with selectors.EpollSelector() as sel:
            sel.register(ours, selectors.EVENT_READ)
            for _ in range(count):
                time.sleep(pause_s)
                started = time.perf_counter()
                ours.sendall(REQUEST)
                sent = time.perf_counter()
                answer = b""
                while len(answer) < 2:
                    sel.select()
                    answer += ours.recv(16)
                done = time.perf_counter()
                sends.append((sent - started) * 1e6)
                trips.append((done - started) * 1e6)
    finally:
        os.sched_setaffinity(0, before)
        ours.close()
        os.waitpid(pid, 0)
    return {"send_us": sends, "round_trip_us": trips}


def _figures(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {f"p{q}": round(percentile(ordered, q), 1) for q in (50, 90, 99)}


def measure(count: int, pause_s: float, rounds: int) -> dict[str, Any]:
    """Every placement this machine can take, alternated ``rounds`` times."""
    placements = [p for p in PLACEMENTS if p != "other CPU" or len(os.sched_getaffinity(0)) > 1]
    raw: dict[str, dict[str, list[float]]] = {
        p: {"send_us": [], "round_trip_us": []} for p in placements
    }
    per_round = max(1, count // rounds)
    for _ in range(rounds):
        for placement in placements:
            got = round_trips(placement, per_round, pause_s)
            for key, values in got.items():
                raw[placement][key].extend(values)
    return {
        "count": per_round * rounds,
        "pause_ms": pause_s * 1000,
        "request_bytes": len(REQUEST),
        "placements": {
            p: {key: _figures(values) for key, values in raw[p].items()} for p in placements
        },
    }


def render(result: dict[str, Any]) -> str:
    """The table."""
    lines = [
        f"{result['count']} round trips per placement, {result['request_bytes']} bytes out, "
        f"2 back, {result['pause_ms']:g} ms idle before each (µs)",
        f"{'peer placement':<12} {'send p50':>9} {'p90':>7} {'p99':>7}   "
        f"{'round trip p50':>14} {'p90':>7} {'p99':>7}",
    ]
    for name, fig in result["placements"].items():
        send, trip = fig["send_us"], fig["round_trip_us"]
        lines.append(
            f"{name:<12} {send['p50']:>9} {send['p90']:>7} {send['p99']:>7}   "
            f"{trip['p50']:>14} {trip['p90']:>7} {trip['p99']:>7}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Measure, print, and write ``--json``."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.wakeups", description=__doc__)
    p.add_argument("--count", type=int, default=2000, help="round trips per placement")
    p.add_argument("--pause-ms", type=float, default=5.0, help="idle time before each")
    p.add_argument("--rounds", type=int, default=4, help="alternations of the placements")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = p.parse_args(argv)
    if args.count < 1 or args.rounds < 1 or args.pause_ms < 0:
        p.error("--count and --rounds must be at least 1, --pause-ms not negative")
    result = measure(args.count, args.pause_ms / 1000, args.rounds)
    print(render(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
