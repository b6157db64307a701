"""``python -m hardening [--quick] [--json FILE] [--only SECTION ...]``: the long mode.

Runs every check of the pytest suite with more examples, bigger inputs and more
repetitions, prints the figures and exits 1 when anything failed (a problem is printed for
each), 0 otherwise. Needs what the pytest suite needs: the OPA binary, PostgreSQL (started
by scripts/start-postgres.sh) and root for the tmpfs of the disk-full fault.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hardening.figures import Figures


@dataclass(frozen=True)
class Scale:
    """How much of everything one run does."""

    parser_examples: int
    api_examples: int
    quick_classes: bool
    trace_memory: bool
    opa_kills: int
    crash_rounds: int
    pg_requests: int


FULL = Scale(parser_examples=2000, api_examples=25, quick_classes=False, trace_memory=True,
             opa_kills=3, crash_rounds=5, pg_requests=60)  # fmt: skip
QUICK = Scale(parser_examples=150, api_examples=4, quick_classes=True, trace_memory=True,
              opa_kills=1, crash_rounds=2, pg_requests=24)  # fmt: skip


def _parsers(work: Path, f: Figures, s: Scale) -> list[str]:
    from hardening.parsers import TARGETS, UndocumentedFailure, fuzz_target

    problems = []
    for name, target in TARGETS.items():
        try:
            fuzz_target(target, f, examples=s.parser_examples)
        except UndocumentedFailure as exc:
            problems.append(f"parser {name}: {exc}")
    return problems


def _hostile(work: Path, f: Figures, s: Scale) -> list[str]:
    from hardening.hostile import CLASSES, QUICK_CLASSES
    from hardening.parsers import UndocumentedFailure, run_all_hostile

    try:
        run_all_hostile(f, classes=QUICK_CLASSES if s.quick_classes else CLASSES,
                        trace_memory=s.trace_memory)  # fmt: skip
    except UndocumentedFailure as exc:
        return [f"hostile input: {exc}"]
    return []


def _http(work: Path, f: Figures, s: Scale) -> list[str]:
    from fastapi.testclient import TestClient

    from engine.api import create_app
    from engine.config import build_settings
    from hardening.hostile import CLASSES, QUICK_CLASSES
    from hardening.httpfuzz import run_http_hostile
    from hardening.service import create_tokens

    tokens = create_tokens(work / "state")
    app = create_app(build_settings(state_dir=work / "state", auth_failure_limit=10**6))
    with TestClient(app, raise_server_exceptions=False) as client:

        def post(route: str, role: str, raw: bytes) -> tuple[int, dict[str, str], Any]:
            headers = {"Authorization": f"Bearer {tokens[role]}",
                       "Content-Type": "application/json"}  # fmt: skip
            r = client.post(route, content=raw, headers=headers)
            try:
                body = r.json()
            except ValueError:
                body = None
            return r.status_code, dict(r.headers), body

        classes = QUICK_CLASSES if s.quick_classes else CLASSES
        return run_http_hostile(post, f, classes=classes, trace_memory=s.trace_memory)


def _api(work: Path, f: Figures, s: Scale) -> list[str]:
    from engine.api import create_app
    from engine.config import build_settings
    from hardening import seeds
    from hardening.apifuzz import fuzz_api
    from hardening.service import create_tokens, uvicorn_app

    tokens = create_tokens(work / "state")
    app = create_app(build_settings(state_dir=work / "state", auth_failure_limit=10**6))
    with uvicorn_app(app) as base:
        result = fuzz_api(base, tokens, f, examples=s.api_examples,
                          reference_bundle=seeds.sigstore_bundle())  # fmt: skip
    return result.failures


def _faults(work: Path, f: Figures, s: Scale) -> list[str]:
    from hardening import faults

    reports = [
        faults.opa_killed_under_load(work / "kill", f, threads=8, kills=s.opa_kills),
        faults.opa_hanging(work / "hang", f, threads=8),
        faults.prometheus_unavailable(work / "prom-down", f, mode="down"),
        faults.prometheus_unavailable(work / "prom-slow", f, mode="slow"),
        faults.database_locked(work / "locked", f),
        faults.database_full(work / "full", f),
        faults.database_readonly(work / "ro", f),
    ]
    problems = [f"{r.name}: {p}" for r in reports for p in r.problems]
    problems += [f"{r.name}: {r.fail_open} fail-open allows" for r in reports if r.fail_open]
    for r in reports:
        f.notes.append(f"fault {r.name}: {r.answers} answers, {r.fault_answers} named the fault")
    template = faults.served_state(work / "keys")
    for case in faults.KEY_CASES:
        code, stderr = faults.signing_key_at_start(work / "keys", f, case, template=template)
        if code != 2 or not stderr.startswith("error: "):
            problems.append(f"signing key {case}: serve exited {code}: {stderr[-300:]}")
        else:
            message = stderr.strip().replace(str(work / "keys"), "<work>").splitlines()[-1]
            f.notes.append(f"signing key {case}: refused (exit 2): {message[:150]}")
    return problems


def _crash(work: Path, f: Figures, s: Scale) -> list[str]:
    from hardening import durability

    report = durability.crash_rounds(work, f, rounds=s.crash_rounds, threads=8)
    f.notes.append(f"crash: {report.rounds} kill -9 rounds, {report.received} received, "
                   f"{report.log_size} in the log, {report.lost} lost")  # fmt: skip
    return report.problems


def _postgres(work: Path, f: Figures, s: Scale) -> list[str]:
    from hardening import durability

    server = durability.postgres_server_url()
    problems = []
    for kill in (False, True):
        with durability.postgres_database(server) as db:
            report = durability.shared_postgres(work / f"pg-{kill}", f, db, services=3,
                                                threads=3, requests=s.pg_requests,
                                                kill_one=kill)  # fmt: skip
        f.notes.append(f"postgres ({'one killed' if kill else 'clean'}): 3 services, "
                       f"{report.received} received, {report.log_size} in the log, "
                       f"{report.lost} lost")  # fmt: skip
        problems += report.problems
    return problems


def _security(work: Path, f: Figures, s: Scale) -> list[str]:
    from hardening import security
    from hardening.faults import served_app
    from hardening.load import ask, workload
    from hardening.service import audit

    problems = []
    found, _sizes = security.logs_of_a_run(work / "logs", f)
    problems += [f"secret in {where}: {what}" for where, what in found.items() if what]
    bypass = security.bundle_bypass(work / "bypass", f)
    problems += [f"bundle accepted: {a}" for a in bypass.accepted]
    f.notes += [f"OPA alone accepted {n} (refused by the managed engine's pre-check)"
                for n in bypass.opa_only_accepted]  # fmt: skip
    with served_app(work / "tamper" / "state") as served:
        for job in workload() * 3:
            ask(served.base, served.tokens["ci"], job)
    audit(work / "tamper" / "state", work / "tamper" / "audit")
    keys = (work / "tamper" / "audit" / "keys.json").read_text()
    detected = security.tamper_export(work / "tamper" / "audit" / "export.jsonl", keys, f)
    problems += [f"tamper not detected: {n}" for n in security.TAMPER_CASES if n not in detected]
    return problems


SECTIONS: dict[str, Callable[[Path, Figures, Scale], list[str]]] = {
    "parsers": _parsers,
    "hostile": _hostile,
    "http": _http,
    "api": _api,
    "faults": _faults,
    "crash": _crash,
    "postgres": _postgres,
    "security": _security,
}


def main(argv: list[str] | None = None) -> int:
    """Run the sections; print the figures; 0 when nothing failed."""
    parser = argparse.ArgumentParser(prog="python -m hardening", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer examples and rounds")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    parser.add_argument("--only", nargs="+", choices=sorted(SECTIONS), help="run these only")
    args = parser.parse_args(argv)
    scale = QUICK if args.quick else FULL
    figures = Figures()
    problems: list[str] = []
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="releasegate-hardening-") as tmp:
        for name in args.only or list(SECTIONS):
            started = time.monotonic()
            print(f"-- {name} ...", file=sys.stderr, flush=True)
            try:
                problems += SECTIONS[name](Path(tmp) / name, figures, scale)
            except Exception as exc:  # noqa: BLE001 - report and go on with the others
                problems.append(f"{name}: {type(exc).__name__}: {exc}")
                traceback.print_exc()
            timings[name] = round(time.monotonic() - started, 1)
    print(figures.render())
    print("== sections (wall seconds) ==")
    for name, seconds in timings.items():
        print(f"  {name:<10} {seconds:>7}")
    print(f"== problems: {len(problems)} ==")
    for problem in problems:
        print(f"  {problem}")
    if args.json:
        doc = figures.to_json() | {"problems": problems, "seconds": timings,
                                   "scale": "quick" if args.quick else "full"}  # fmt: skip
        args.json.write_text(json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")
    return 1 if problems or figures.decisions_lost or figures.fail_open else 0


if __name__ == "__main__":
    sys.exit(main())
