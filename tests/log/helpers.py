"""Helpers for the decision log tests: decisions and input documents as the core makes them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from engine.log.decision_log import DecisionLog
from engine.models.decision import Decision, EngineInfo, PolicyInfo, Reason

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)


def make_decision(
    n: int = 0,
    *,
    verdict: str = "allow",
    service: str = "payments",
    environment: str = "prod",
    digest: str | None = None,
    dry_run: bool = False,
    reasons: tuple[str, ...] = (),
    at: datetime | None = None,
) -> Decision:
    """A Decision as the decision core would produce it (before logging)."""
    stamp = (at or T0 + timedelta(seconds=n)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return Decision(
        decision_id=str(uuid.uuid4()),
        timestamp=stamp,
        verdict=verdict,  # type: ignore[arg-type]
        reasons=[
            Reason(code=c, verdict="pause", policy="releasegate.test", message=f"{c} #{n}")  # type: ignore[arg-type]
            for c in reasons
        ],
        release={
            "id": f"{service}-1.{n}",
            "service": service,
            "environment": environment,
            "stage": "deploy",
        },
        artifact={"uri": "ghcr.io/acme/payments", "digest": digest or "sha256:" + "ab" * 32},
        dry_run=dry_run,
        policy=PolicyInfo(revision="r1", digest="sha256:" + "cd" * 32),
        engine=EngineInfo(name="opa", version="1.22.3"),
        input_digest="sha256:" + "ef" * 32,
    )


def input_doc(n: int = 0) -> dict[str, Any]:
    """A small input document with fields that masking rules target."""
    return {
        "release": {"id": f"payments-1.{n}", "service": "payments"},
        "evidence": {"attestations": [{"secret": "token-xyz"}]},
        "approvals": {"records": [{"by": "bob", "comment": "lgtm"}, {"by": "eve"}]},
        "score": 0.5,
    }


def fill(log: DecisionLog, count: int, *, start: int = 0) -> list[Decision]:
    """Append ``count`` decisions sequentially."""
    return [
        log.append(make_decision(n), input_document=input_doc(n), caller="ci", adapter="check")
        for n in range(start, start + count)
    ]
