"""Hostile raw bodies POSTed through the HTTP layer, with the contract's oracles.

Each :class:`Placement` puts a hostile class at one place of a real request body. The
answer must be a 4xx in the one error shape, or a 200 whose verdict is not ``allow``
unless the placement leaves a request that may be allowed (``allow_ok``); never a 5xx.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hardening import seeds
from hardening.figures import Figures
from hardening.hostile import CLASSES, PLACEHOLDER, HostileClass, measure, put, splice


@dataclass(frozen=True)
class Placement:
    """Where a hostile value goes in which route's body."""

    name: str
    route: str
    role: str
    template: Callable[[], Any]
    path: tuple[str | int, ...]
    allow_ok: bool = False
    """An allow is legitimate (the hostile value sits where any string is valid)."""


def _dev() -> Any:
    return seeds.decision_request("dev")


def _dev_scan() -> Any:
    body = seeds.decision_request("dev")
    body["evidence"]["scans"] = [{"format": "trivy", "report": seeds.scan_report("trivy")}]
    return body


PLACEMENTS: tuple[Placement, ...] = (
    Placement("decisions.body", "/v1/decisions", "ci", _dev, ()),
    Placement("decisions.release.id", "/v1/decisions", "ci", _dev, ("release", "id"), True),
    Placement("decisions.artifact.digest", "/v1/decisions", "ci", _dev, ("artifact", "digest")),
    Placement(
        "decisions.attestation", "/v1/decisions", "ci", _dev, ("evidence", "attestations", 0)
    ),
    Placement(
        "decisions.dsse.payload",
        "/v1/decisions",
        "ci",
        _dev,
        ("evidence", "attestations", 0, "dsseEnvelope", "payload"),
    ),  # fmt: skip
    Placement(
        "decisions.scan.report",
        "/v1/decisions",
        "ci",
        _dev_scan,
        ("evidence", "scans", 0, "report", "Results"),
    ),  # fmt: skip
    Placement("admission.body", "/v1/admission", "admission", seeds.admission_review, ()),
    Placement(
        "admission.image",
        "/v1/admission",
        "admission",
        seeds.admission_review,
        ("request", "object", "spec", "template", "spec", "containers", 0, "image"),
    ),  # fmt: skip
    Placement(
        "flagger.release_id",
        "/v1/hooks/flagger/confirm-rollout",
        "rollout",
        seeds.flagger_payload,
        ("metadata", "release_id"),
        True,
    ),  # fmt: skip
    Placement(
        "argo.release_id",
        "/v1/hooks/argo-rollouts",
        "rollout",
        lambda: {
            "release_id": "r1",
            "service": "payments",
            "environment": "dev",
            "stage": "canary",
            "artifact_digest": seeds.ARTIFACT_DIGEST,
        },
        ("release_id",),
        True,
    ),  # fmt: skip
    Placement(
        "approvals.comment",
        "/v1/approvals",
        "approver",
        lambda: {
            "release_id": "r1",
            "artifact_digest": seeds.ARTIFACT_DIGEST,
            "environment": "prod",
            "comment": "ok",
        },
        ("comment",),
        True,
    ),  # fmt: skip
)

Post = Callable[[str, str, bytes], tuple[int, dict[str, str], Any]]
"""(route, role, raw body) -> (status, headers, parsed JSON body or None)."""


class ContractViolation(AssertionError):
    """A 5xx, an allow where none may be, or an error outside the one error shape."""


def check_answer(placement: Placement, status: int, body: Any) -> str:
    """The outcome label of one answer; raises :class:`ContractViolation`."""
    if status >= 500:
        raise ContractViolation(f"{placement.name}: HTTP {status}: {str(body)[:300]}")
    if 400 <= status < 500:
        if not (isinstance(body, dict) and {"code", "message", "errors"} <= set(body)):
            raise ContractViolation(f"{placement.name}: {status} outside the error shape")
        if "verdict" in body:
            raise ContractViolation(f"{placement.name}: an error carries a verdict")
        return f"{status}"
    if isinstance(body, dict) and placement.route == "/v1/admission":
        allowed = body.get("response", {}).get("allowed")
        if allowed is True:
            raise ContractViolation(f"{placement.name}: hostile AdmissionReview admitted")
        return f"{status}:allowed={allowed}"
    verdict = body.get("verdict") if isinstance(body, dict) else None
    if verdict == "allow" and not placement.allow_ok:
        raise ContractViolation(f"{placement.name}: hostile request allowed")
    return f"{status}:{verdict}"


def hostile_body(placement: Placement, klass: HostileClass) -> bytes:
    """The raw body: the template with the hostile fragment spliced in."""
    return splice(put(placement.template(), placement.path, PLACEHOLDER), klass.fragment())


def run_http_hostile(
    post: Post,
    figures: Figures,
    *,
    classes: tuple[HostileClass, ...] = CLASSES,
    placements: tuple[Placement, ...] = PLACEMENTS,
    trace_memory: bool = True,
) -> list[str]:
    """Every class at every placement; returns the violations (empty when all is well).

    Time is of an untraced request; with ``trace_memory`` the request is sent again under
    tracemalloc (the app runs in this process) for its peak.
    """
    violations: list[str] = []
    for placement in placements:
        for klass in classes:
            raw = hostile_body(placement, klass)
            status = 0

            def send(
                raw: bytes = raw, placement: Placement = placement, klass: HostileClass = klass
            ) -> str:
                nonlocal status
                status, _headers, body = post(placement.route, placement.role, raw)
                try:
                    return check_answer(placement, status, body)
                except ContractViolation as exc:
                    violations.append(f"{klass.name}: {exc}")
                    return f"VIOLATION:{status}"

            result = measure(send, trace_memory=trace_memory)
            figures.hostile_input(
                f"http:{placement.name}", klass.name, seconds=result.seconds,
                peak=result.peak_bytes, outcome=result.outcome,
            )  # fmt: skip
    return violations
