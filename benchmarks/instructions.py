"""Instructions per request of the service's own process, counted by valgrind: a measure of
the service's work that the host's speed does not move.

Run as ``python -m benchmarks.instructions`` (needs ``valgrind``; ``scripts/install-test-deps.sh``
installs it). For each route it runs the whole app in process, as ``benchmarks.stages``
does (``create_app`` on a scratch state: managed OPA on the committed signed bundle, SQLite
log, token store; one CI decision first, so that an admission finds its prior allow), under
``valgrind --tool=cachegrind --cache-sim=no`` twice: once with ``--warmup`` requests, once with
``--warmup`` + ``--requests``. The difference of the two instruction counts, over
``--requests``, is what one request costs the service's process: the event loop, the log's
commit, every thread of it; not OPA (its own process, which valgrind does not follow), not
the kernel. The two runs go side by side (one per CPU).

Why: a change of 2-5 % of a request's CPU is inside what this host's speed moves from one
minute to the next (``docs/benchmarks.md``, "Machine and noise"), so ``benchmarks.ab`` cannot
resolve it; the instruction count of the same code repeats to within about 1.5 % (round 18:
four runs of 200 admissions, 3.05-3.10 million each), so a change is judged by a few runs of
each side whose ranges do not overlap. It is a count, not a time: a request whose work
misses the CPU's caches costs more time per instruction, and valgrind runs the process ~50
times slower, so the caches that expire after seconds (tokens, prior decisions) are
refreshed more often per request than in service. Read it next to the timed scenarios,
never instead of them.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROUTES = {
    "admission": "POST /v1/admission/staging (scenario 2's review, a prior allow exists)",
    "decision": "POST /v1/decisions (scenario 1's 25 KB request, verification cache warm)",
}
_SUMMARY = re.compile(r"^summary:\s+(\d+)", re.MULTILINE)


class ValgrindMissing(Exception):
    """``valgrind`` is not on the PATH."""


def instruction_count(cachegrind_out: str) -> int:
    """The total ``Ir`` of a cachegrind output file (its ``summary:`` line)."""
    found = _SUMMARY.search(cachegrind_out)
    if found is None:
        raise ValueError("no 'summary:' line in the cachegrind output")
    return int(found[1])


def _count(valgrind: str, route: str, warmup: int, requests: int, workdir: Path) -> int:
    out = workdir / f"cachegrind.{route}.{requests}.out"
    argv = [
        valgrind, "--tool=cachegrind", "--cache-sim=no", f"--cachegrind-out-file={out}",
        sys.executable, "-m", "benchmarks.instructions", "--child", route,
        "--warmup", str(warmup), "--requests", str(requests),
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0 or not out.exists():
        raise RuntimeError(f"the {route} run under valgrind failed: {done.stderr[-2000:]}")
    return instruction_count(out.read_text())


def measure(routes: list[str], warmup: int, requests: int) -> dict[str, dict[str, Any]]:
    """Instructions per request of each route (two valgrind runs each, side by side)."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise ValgrindMissing(
            "valgrind is not installed (scripts/install-test-deps.sh installs it)"
        )
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="releasegate-instructions-") as tmp:
        for route in routes:
            with ThreadPoolExecutor(max_workers=2) as pool:
                base = pool.submit(_count, valgrind, route, warmup, 0, Path(tmp))
                more = pool.submit(_count, valgrind, route, warmup, requests, Path(tmp))
                without, with_requests = base.result(), more.result()
            results[route] = {
                "requests": requests,
                "warmup": warmup,
                "instructions_per_request": round((with_requests - without) / requests),
                "instructions_warmup_run": without,
                "instructions_measured_run": with_requests,
            }
    return results


# -- the measured process -----------------------------------------------------------------


def _child(route: str, warmup: int, requests: int) -> int:
    import uvloop

    from benchmarks.scenarios import admission_review, request_body
    from engine.api import create_app
    from engine.api.logs import configure_logging
    from engine.auth.sql import database_url
    from engine.auth.tokens import TokenStore
    from engine.config import Settings

    body = request_body()
    digest = json.loads(body)["artifact"]["digest"]
    review = json.dumps(admission_review(digest, str(uuid.uuid4()))).encode()
    with tempfile.TemporaryDirectory(prefix="releasegate-instructions-app-") as tmp:
        settings = Settings(state_dir=Path(tmp), bundle_poll_s=0)
        tokens = TokenStore(database_url(settings.state_dir, None))
        try:
            ci, _ = tokens.create("bench-ci", ["ci"])
            admission, _ = tokens.create("bench-admission", ["admission"])
        finally:
            tokens.close()
        if route == "admission":
            target = ("/v1/admission/staging", admission, review)
        else:
            target = ("/v1/decisions", ci, body)
        # The service's log lines, as `serve` writes them to its standard error, go to a file;
        # a failure's traceback reaches the parent on the real one (restored before it is
        # printed).
        with (Path(tmp) / "service.log").open("w") as log:
            sys.stderr = log
            try:
                configure_logging("info")
                uvloop.run(_drive(create_app(settings), (ci, body), target, warmup + requests))
            finally:
                sys.stderr = sys.__stderr__
    return 0


async def _drive(
    app: Any, first: tuple[str, bytes], target: tuple[str, str, bytes], count: int
) -> None:
    from benchmarks.stages import _asgi_post, running

    def headers(token: str, body: bytes) -> list[tuple[bytes, bytes]]:
        return [
            (b"host", b"instructions"),
            (b"authorization", f"Bearer {token}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]

    async with running(app):
        ci, body = first
        if (status := await _asgi_post(app, "/v1/decisions", headers(ci, body), body)) != 200:
            raise RuntimeError(f"POST /v1/decisions answered {status}")
        path, token, payload = target
        for _ in range(count):  # one at a time, as a paced admission arrives
            status = await _asgi_post(app, path, headers(token, payload), payload)
            if status != 200:
                raise RuntimeError(f"POST {path} answered {status}")


def main(argv: list[str] | None = None) -> int:
    """Count, print the table, write the JSON."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.instructions", description=__doc__)
    parser.add_argument("--route", choices=[*ROUTES, "both"], default="both")
    parser.add_argument("--requests", type=int, default=200, help="measured requests per route")
    parser.add_argument("--warmup", type=int, default=20, help="requests before the measured ones")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--child", choices=list(ROUTES), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args.child, args.warmup, args.requests)
    if args.requests < 1 or args.warmup < 0:
        parser.error("--requests must be at least 1 and --warmup at least 0")
    routes = list(ROUTES) if args.route == "both" else [args.route]
    try:
        results = measure(routes, args.warmup, args.requests)
    except ValgrindMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("instructions per request, the service's own process (valgrind; OPA not counted)")
    for route, figures in results.items():
        print(f"  {ROUTES[route]:78s} {figures['instructions_per_request']:>12,}")
    if args.json:
        args.json.write_text(json.dumps({"routes": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
