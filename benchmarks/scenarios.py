"""The four scenarios of issue 9. Each returns a JSON-able dict with its ``runs`` (rows)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.measure import run_load
from benchmarks.procs import (
    REPO,
    Service,
    environment_value,
    named,
    process_tree,
    start_opa,
    start_relay,
    start_service,
)
from engine.affinity import plan_for, usable_cpus
from engine.engines.base import DECISION_PATH
from engine.log.scratch_db import scratch_database

REQUEST_FILE = REPO / "examples" / "requests" / "allow.json"
FLOOR = "releasegate GET /healthz"
"""The HTTP floor row of scenario 1: the service's stack with no work behind it."""
ENVIRONMENT = "staging"  # allow.json's environment: an allow needs no approval there


@dataclass(frozen=True)
class Options:
    """What every scenario needs from the command line."""

    workdir: Path
    duration: float | None
    requests: int | None
    concurrency: int
    repeat: int
    loadgen_procs: int
    postgres_url: str | None
    admission_rate: float = 100.0
    log_appends: int = 2000
    workers: int = 2


def request_body() -> bytes:
    """``examples/requests/allow.json`` as a client would send it (compact JSON)."""
    doc = json.loads(REQUEST_FILE.read_text())
    return json.dumps(doc, separators=(",", ":")).encode()


def _write(workdir: Path, name: str, data: bytes) -> Path:
    path = workdir / name
    path.write_bytes(data)
    return path


def opa_input_body(body: bytes, workdir: Path) -> bytes:
    """``{"input": doc}``: the document the pipeline's ``build_input`` makes of the request,
    in the bytes the service sends OPA (its RFC 8785 encoding)."""
    from engine.approvals import ApprovalStore
    from engine.config import build_settings
    from engine.decision import DecisionPipeline
    from engine.engines.opa_http import input_body
    from engine.models.common import quantize_ns
    from engine.models.request import DecisionRequestV1
    from engine.runtime import build_providers

    settings = build_settings()
    approvals = ApprovalStore(
        f"sqlite:///{workdir / 'approvals-for-input.db'}",
        default_ttl_s=settings.approval_default_ttl_s,
        max_ttl_s=settings.approval_max_ttl_s,
    )
    try:
        providers = build_providers(settings, approvals=approvals)
        pipeline = DecisionPipeline(engine=None, providers=providers)  # type: ignore[arg-type]
        request = DecisionRequestV1.model_validate_json(body)
        document = pipeline.build_input(
            request, now_ns=quantize_ns(time.time_ns()), caller="bench-ci", adapter="api"
        )
        return input_body(pipeline.encode_input(document))
    finally:
        approvals.close()


def _decide_once(service: Service, body: bytes) -> dict[str, Any]:
    status, answer = service.call("POST", "/v1/decisions", body, "ci")
    if status != 200 or answer.get("verdict") != "allow":
        raise RuntimeError(f"warm-up decision: HTTP {status}: {str(answer)[:300]}")
    return dict(answer)


def _auth(service: Service, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {service.tokens[role]}"}


@dataclass(frozen=True)
class Target:
    """One row of a scenario's table: what the load generator sends, and to which process."""

    name: str
    process: Any  # Service or BareOpa: .process.pid and .port
    path: str
    body_file: Path
    headers: dict[str, str] = field(default_factory=dict)
    method: str = "POST"
    expect_text: str | None = None
    """What every answer must contain to count (the verdict): see ``loadgen.Spec``."""
    paced_like: str | None = None
    """Pace this row (open loop) at the rate the named row reached in the same round."""


SERVICE_ROW = "releasegate (SQLite)"
"""Scenario 1's one-process service: the row issue 9's targets are about."""
PACED_OPA = "bare OPA, paced at releasegate's rate"
"""Bare OPA driven open loop at the rate the service reached in the same round."""
AFFINITY_ROW = "releasegate, cpu_affinity auto"
"""Scenario 1's one-process service with ``cpu_affinity = auto`` (when there are 2+ CPUs)."""
ALLOW = '"verdict":"allow"'
ADMISSION_OPA = "bare OPA, admission input"
"""Scenario 2's baseline: OPA evaluating the document the service built for an admission."""
OPA_FLOOR = "bare OPA GET /health"
"""Scenario 2's second floor: OPA's own empty health check at the same rate."""
RELAY = "least front: HTTP, OPA, signed commit"
"""Scenario 2's third floor: ``benchmarks.relay`` in front of the bare OPA at the same rate."""
EVALUATE = f"/v1/data/{DECISION_PATH}"
"""What the bare OPA baselines are sent: the service's own entrypoint, over the Data API."""
ADMITTED = '"allowed":true'


def _rounds(targets: list[Target], repeat: int, **load: Any) -> list[dict[str, Any]]:
    """``repeat`` rounds, each target once per round (interleaved); rows carry their round."""
    runs: list[dict[str, Any]] = []
    for i in range(repeat):
        for t in targets:
            this_load = dict(load)
            if t.paced_like is not None:
                like = [r for r in runs if r["name"] == t.paced_like and r["run"] == i + 1]
                this_load["rate"] = like[0]["per_s"]
            row = run_load(
                t.name,
                target_pid=t.process.process.pid,
                port=t.process.port,
                path=t.path,
                body_file=t.body_file,
                headers=t.headers,
                method=t.method,
                expect_text=t.expect_text,
                event_loop=isinstance(t.process, Service) and t.process.workers == 1,
                **this_load,
            )
            row["run"] = i + 1
            runs.append(row)
    return runs


def core(opts: Options) -> dict[str, Any]:
    """Scenario 1: releasegate vs bare OPA vs OPA with console decision logs, cache warm."""
    body = request_body()
    body_file = _write(opts.workdir, "core-request.json", body)
    opa_body = opa_input_body(body, opts.workdir)
    opa_file = _write(opts.workdir, "core-opa-input.json", opa_body)
    empty_file = _write(opts.workdir, "empty", b"")
    targets: list[Target] = []
    stack: list[Any] = []
    decide = "/v1/decisions"
    try:
        svc = start_service(opts.workdir / "core-sqlite", roles=("ci",))
        stack.append(svc)
        _decide_once(svc, body)
        targets.append(
            Target(SERVICE_ROW, svc, decide, body_file, _auth(svc, "ci"), expect_text=ALLOW)
        )
        if opts.workers > 1:
            many = start_service(opts.workdir / "core-workers", roles=("ci",), workers=opts.workers)
            stack.append(many)
            _decide_once(many, body)
            targets.append(
                Target(
                    _workers_row(opts),
                    many,
                    decide,
                    body_file,
                    _auth(many, "ci"),
                    expect_text=ALLOW,
                )
            )
        if plan_for(usable_cpus()) is not None:
            pinned = start_service(
                opts.workdir / "core-affinity",
                env={"RELEASEGATE_CPU_AFFINITY": "auto"},
                roles=("ci",),
            )
            stack.append(pinned)
            _decide_once(pinned, body)
            targets.append(
                Target(
                    AFFINITY_ROW, pinned, decide, body_file, _auth(pinned, "ci"), expect_text=ALLOW
                )
            )
        # The HTTP floor: the same process, uvicorn + middleware + FastAPI, no work at all.
        targets.append(Target(FLOOR, svc, "/healthz", empty_file, method="GET"))
        if opts.postgres_url:
            db = scratch_database(opts.postgres_url, prefix="rg_bench_svc_")
            pg_url = db.__enter__()
            stack.append(_Exit(db))
            pg = start_service(
                opts.workdir / "core-pg", env={"RELEASEGATE_DATABASE_URL": pg_url}, roles=("ci",)
            )
            stack.append(pg)
            _decide_once(pg, body)
            targets.append(
                Target(
                    "releasegate (PostgreSQL)",
                    pg,
                    decide,
                    body_file,
                    _auth(pg, "ci"),
                    expect_text=ALLOW,
                )
            )
        bare = start_opa(opts.workdir, console_log=False)
        stack.append(bare)
        targets.append(Target("bare OPA", bare, EVALUATE, opa_file, expect_text=ALLOW))
        # OPA at the rate releasegate reached in the round: what one evaluation costs OPA
        # when it is not saturated, as the service's own OPA never is. Tuned as that OPA,
        # Go processors included, so that its CPU per evaluation compares with the
        # service's OPA's (the saturated row keeps Go's default: the ratio's denominator).
        paced = start_opa(opts.workdir, console_log=False, service_processors=True)
        stack.append(paced)
        targets.append(
            Target(PACED_OPA, paced, EVALUATE, opa_file, expect_text=ALLOW, paced_like=SERVICE_ROW)
        )
        go_processors = {
            "service_opa": _managed_opa_processors(svc),
            "bare_opa": environment_value(bare.process.pid, "GOMAXPROCS"),
            "paced_opa": environment_value(paced.process.pid, "GOMAXPROCS"),
        }
        logged = start_opa(opts.workdir, console_log=True)
        stack.append(logged)
        targets.append(
            Target("OPA + console decision log", logged, EVALUATE, opa_file, expect_text=ALLOW)
        )
        runs = _rounds(
            targets,
            opts.repeat,
            concurrency=opts.concurrency,
            requests=opts.requests,
            duration=opts.duration,
            loadgen_procs=opts.loadgen_procs,
        )
        console_lines = logged.log_lines()
    finally:
        for item in reversed(stack):
            item.stop()
    return {
        "request_bytes": len(body),
        "opa_input_bytes": len(opa_body),
        "runs": runs,
        "ratio_releasegate_to_bare_opa": _ratio(runs, SERVICE_ROW, "bare OPA"),
        "opa_cpu_ms_per_evaluation": _opa_costs(runs),
        "ratio_workers_to_bare_opa": _ratio(runs, _workers_row(opts), "bare OPA")
        if opts.workers > 1
        else None,
        "ratio_affinity_to_bare_opa": _ratio(runs, AFFINITY_ROW, "bare OPA"),
        "opa_console_log_lines": console_lines,
        "gomaxprocs": go_processors,
    }


def _managed_opa_processors(svc: Service) -> list[str | None]:
    """``GOMAXPROCS`` of each OPA the service manages, from the processes' environments."""
    return [
        environment_value(pid, "GOMAXPROCS") for pid in named(process_tree(svc.process.pid), "opa")
    ]


def _workers_row(opts: Options) -> str:
    return f"releasegate, {opts.workers} workers"


class _Exit:
    """Adapts a context manager to the ``stop()`` of the cleanup stack."""

    def __init__(self, cm: Any) -> None:
        self.cm = cm

    def stop(self) -> None:
        self.cm.__exit__(None, None, None)


def _opa_costs(runs: list[dict[str, Any]]) -> dict[str, float | None]:
    """OPA's CPU per evaluation, mean over the rounds: saturated (bare OPA), paced at the
    service's rate, and inside the service (its managed OPA)."""

    def mean(name: str, key: str) -> float | None:
        rows = [r[key] for r in runs if r["name"] == name]
        return round(sum(rows) / len(rows), 3) if rows else None

    return {
        "bare_saturated": mean("bare OPA", "cpu_ms_per_req"),
        "bare_paced": mean(PACED_OPA, "cpu_ms_per_req"),
        "in_releasegate": mean(SERVICE_ROW, "opa_cpu_ms_per_req"),
    }


def _ratio(runs: list[dict[str, Any]], a: str, b: str) -> float | None:
    def mean(name: str) -> float:
        rows = [r["per_s"] for r in runs if r["name"] == name]
        return sum(rows) / len(rows) if rows else 0.0

    return round(mean(a) / mean(b), 3) if mean(a) and mean(b) else None


def admission_review(digest: str, uid: str) -> dict[str, Any]:
    """A Pod CREATE review whose image is pinned to ``digest``."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "payments", "namespace": "payments", "labels": {"app": "payments"}},
        "spec": {"containers": [{"name": "app", "image": f"ghcr.io/acme/payments@{digest}"}]},
    }
    gvk = {"group": "", "version": "v1", "kind": "Pod"}
    gvr = {"group": "", "version": "v1", "resource": "pods"}
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": gvk,
            "resource": gvr,
            "requestKind": gvk,
            "requestResource": gvr,
            "name": "payments",
            "namespace": "payments",
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:ci:deployer"},
            "object": pod,
            "oldObject": None,
            "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }


def _admission_record(svc: Service, answer: dict[str, Any]) -> dict[str, Any]:
    """The record of the admission that ``answer`` reports, read back by an auditor."""
    from engine.adapters.admission import DECISION_ID_ANNOTATION

    decision_id = answer["response"]["auditAnnotations"][DECISION_ID_ANNOTATION]
    status, record = svc.call("GET", f"/v1/decisions/{decision_id}", None, "auditor")
    if status != 200:
        raise RuntimeError(f"admission record {decision_id}: HTTP {status}: {str(record)[:300]}")
    if record.get("masked"):  # a masked copy is not the document OPA evaluated
        raise RuntimeError(f"admission record {decision_id} is masked: {record['masked']}")
    return dict(record)


def _commit_floor(opts: Options, record_file: Path, requests: int, run: int) -> dict[str, Any]:
    """``python -m engine.log.commit_floor``: the admission record's durable commit alone, at
    the admission rate, in a log on the same disk as the service's (``engine/log``)."""
    out = opts.workdir / f"commit-floor-{run}.json"
    argv = [sys.executable, "-m", "engine.log.commit_floor", str(record_file), "--json", str(out)]
    argv += ["--state-dir", str(opts.workdir / f"commit-floor-{run}")]
    argv += ["--rate", str(opts.admission_rate), "--count", str(requests)]
    subprocess.run(argv, check=True, cwd=REPO, capture_output=True)  # noqa: S603
    row: dict[str, Any] = json.loads(out.read_text())
    row["run"] = run
    return row


def admission(opts: Options) -> dict[str, Any]:
    """Scenario 2: ``POST /v1/admission/staging`` paced at a fixed rate, a prior allow exists."""
    body = request_body()
    digest = json.loads(body)["artifact"]["digest"]
    review = json.dumps(admission_review(digest, str(uuid.uuid4())), separators=(",", ":"))
    review_file = _write(opts.workdir, "admission-review.json", review.encode())
    stack: list[Any] = []
    try:
        svc = start_service(opts.workdir / "admission", roles=("ci", "admission", "auditor"))
        stack.append(svc)
        prior = _decide_once(svc, body)
        path = f"/v1/admission/{ENVIRONMENT}"
        status, answer = svc.call("POST", path, review.encode(), "admission")
        if status != 200 or not answer.get("response", {}).get("allowed"):
            raise RuntimeError(f"admission warm-up: HTTP {status}: {str(answer)[:300]}")
        record = _admission_record(svc, answer)
        record_file = _write(opts.workdir, "admission-record.json", json.dumps(record).encode())
        opa_input = json.dumps({"input": record["input"]}, separators=(",", ":")).encode()
        opa_file = _write(opts.workdir, "admission-opa-input.json", opa_input)
        duration = opts.duration or 10.0
        requests = opts.requests or int(opts.admission_rate * duration)
        empty_file = _write(opts.workdir, "empty", b"")
        # Tuned as the service's managed OPA, processors included: at admission's rate the
        # baselines and the least front (which asks this OPA) get what the service's gets.
        bare = start_opa(opts.workdir, console_log=False, unix_socket=True, service_processors=True)
        stack.append(bare)
        relay = start_relay(opts.workdir, opa=bare, opa_input=opa_file, record=record_file)
        go_processors = {
            "service_opa": _managed_opa_processors(svc),
            "bare_opa": environment_value(bare.process.pid, "GOMAXPROCS"),
        }
        stack.append(relay)
        targets = [
            Target(
                "releasegate admission",
                svc,
                path,
                review_file,
                _auth(svc, "admission"),
                expect_text=ADMITTED,
            ),
            # The stack's own round trip at the same rate (the floor of any answer's latency).
            Target(FLOOR, svc, "/healthz", empty_file, method="GET"),
            # The reference engine alone at the same rate: the admission's input document
            # (as the service built it for the warm-up review), and OPA's empty health check.
            Target(ADMISSION_OPA, bare, EVALUATE, opa_file, expect_text=ALLOW),
            Target(OPA_FLOOR, bare, "/health", empty_file, method="GET"),
            # The least a front can do in the service's place: the same review in, the same
            # OPA evaluation, a copy of the admission's record signed and committed, out.
            Target(RELAY, relay, "/", review_file, expect_text=ADMITTED),
        ]
        runs = _rounds(
            targets,
            opts.repeat,
            concurrency=min(8, opts.concurrency),
            requests=requests,
            duration=None,
            rate=opts.admission_rate,
            loadgen_procs=1,
        )
    finally:
        for item in reversed(stack):
            item.stop()
    # After the services stopped, so nothing else writes to the disk meanwhile.
    floor = [_commit_floor(opts, record_file, requests, i + 1) for i in range(opts.repeat)]
    return {
        "request_bytes": len(review),
        "opa_input_bytes": len(opa_input),
        "prior_decision_id": prior["decision_id"],
        "gomaxprocs": go_processors,
        "rate": opts.admission_rate,
        "runs": runs,
        "commit_floor": floor,
    }


def cold(opts: Options) -> dict[str, Any]:
    """Scenario 3: verification cache disabled, so every request verifies its bundle."""
    body = request_body()
    body_file = _write(opts.workdir, "cold-request.json", body)
    svc = start_service(
        opts.workdir / "cold", env={"RELEASEGATE_VERIFICATION_CACHE_SIZE": "0"}, roles=("ci",)
    )
    try:
        _decide_once(svc, body)
        target = Target("releasegate, cold verification", svc, "/v1/decisions", body_file,
                        _auth(svc, "ci"), expect_text=ALLOW)  # fmt: skip
        runs = _rounds(
            [target],
            opts.repeat,
            concurrency=opts.concurrency,
            requests=opts.requests,
            duration=opts.duration,
            loadgen_procs=opts.loadgen_procs,
        )
    finally:
        svc.stop()
    return {
        "request_bytes": len(body),
        "method": "verification cache disabled (RELEASEGATE_VERIFICATION_CACHE_SIZE=0): "
        "every request fully verifies the Sigstore DSSE bundle of allow.json",
        "runs": runs,
    }


def log_appends(opts: Options) -> dict[str, Any]:
    """Scenario 4: ``python -m engine.log.bench`` (SQLite, PostgreSQL; 1 and 16 writers)."""
    runs = []
    for i in range(opts.repeat):
        out = opts.workdir / f"log-bench-{i}.json"
        argv = [sys.executable, "-m", "engine.log.bench", "--appends", str(opts.log_appends)]
        argv += ["--json", str(out)]
        if opts.postgres_url:
            argv += ["--postgres-url", opts.postgres_url]
        subprocess.run(argv, check=True, cwd=REPO, capture_output=True)  # noqa: S603
        for row in json.loads(out.read_text())["results"]:
            row["run"] = i + 1
            runs.append(row)
    return {"appends_per_config": opts.log_appends, "runs": runs}


def stages(opts: Options) -> dict[str, Any]:
    """Where one decision's CPU goes: ``python -m benchmarks.stages``, once per repeat."""
    from benchmarks.stages import STAGES

    runs = []
    for i in range(opts.repeat):
        out = opts.workdir / f"stages-{i}.json"
        argv = [sys.executable, "-m", "benchmarks.stages", "--json", str(out)]
        argv += ["--iterations", str(min(300, opts.requests or 300))]
        subprocess.run(argv, check=True, cwd=REPO, capture_output=True)  # noqa: S603
        runs.append(json.loads(out.read_text()))
    return {"stages": [{"key": k, "label": label} for k, label in STAGES], "runs": runs}


SCENARIOS = {
    "core": core,
    "admission": admission,
    "cold": cold,
    "log": log_appends,
    "stages": stages,
}
