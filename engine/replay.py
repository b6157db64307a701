"""Replay: re-evaluate stored input documents under another policy bundle.

Impact analysis before a policy rollout: which logged decisions would change verdict, from
what to what, and why. Replay reads the log (or an auditor's export), evaluates with the
same engine as every other path (OPA, fail-closed) and writes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.decision import evaluate
from engine.engines.base import PolicyEngine
from engine.errors import InputError
from engine.log.record import DecisionRecordV1


@dataclass(frozen=True)
class ReplayChange:
    """One decision whose outcome differs under the new policy."""

    decision_id: str
    timestamp: str
    release_id: str
    service: str
    environment: str
    stage: str
    old_verdict: str
    new_verdict: str
    added: tuple[str, ...]
    removed: tuple[str, ...]
    new_messages: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "decision_id": self.decision_id,
            "timestamp": self.timestamp,
            "release": {
                "id": self.release_id,
                "service": self.service,
                "environment": self.environment,
                "stage": self.stage,
            },
            "verdict": {"old": self.old_verdict, "new": self.new_verdict},
            "reasons_added": list(self.added),
            "reasons_removed": list(self.removed),
            "new_reasons": list(self.new_messages),
        }


@dataclass
class ReplayReport:
    """What replaying a set of decisions found."""

    policy_revision: str
    policy_digest: str
    replayed: int = 0
    unchanged: int = 0
    verdict_changes: list[ReplayChange] = field(default_factory=list)
    reason_changes: list[ReplayChange] = field(default_factory=list)
    masked: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "policy": {"revision": self.policy_revision, "digest": self.policy_digest},
            "replayed": self.replayed,
            "unchanged": self.unchanged,
            "verdict_changed": len(self.verdict_changes),
            "reasons_changed": len(self.reason_changes),
            "masked_inputs": self.masked,
            "changes": [c.as_dict() for c in self.verdict_changes + self.reason_changes],
        }


def records_from_export(path: Path) -> Iterator[DecisionRecordV1]:
    """The records of a ``log export`` file (JSON Lines; the checkpoint line is skipped)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"cannot read export {path}: {exc.strerror or exc}") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            document = json.loads(line)
        except ValueError as exc:
            raise InputError(f"{path}:{number}: not JSON: {exc}") from exc
        if isinstance(document, dict) and "decision_id" in document:
            yield DecisionRecordV1.model_validate(document)


def _codes(reasons: Iterable[Any]) -> set[str]:
    return {r.code for r in reasons}


def replay(records: Iterable[DecisionRecordV1], engine: PolicyEngine) -> ReplayReport:
    """Evaluate every record's stored input with ``engine`` and compare."""
    policy = engine.policy
    report = ReplayReport(policy_revision=policy.revision, policy_digest=policy.digest)
    for record in records:
        report.replayed += 1
        if record.erased or record.masked:
            report.masked += 1
        result = evaluate(engine, record.input)
        old_codes, new_codes = _codes(record.reasons), _codes(result.reasons)
        if result.verdict == record.verdict and old_codes == new_codes:
            report.unchanged += 1
            continue
        release = record.release
        change = ReplayChange(
            decision_id=record.decision_id,
            timestamp=record.timestamp,
            release_id=str(release.get("id", "")),
            service=str(release.get("service", "")),
            environment=str(release.get("environment", "")),
            stage=str(release.get("stage", "")),
            old_verdict=record.verdict.value,
            new_verdict=result.verdict.value,
            added=tuple(sorted(new_codes - old_codes)),
            removed=tuple(sorted(old_codes - new_codes)),
            new_messages=tuple(f"{r.code}: {r.message}" for r in result.reasons),
        )
        if result.verdict != record.verdict:
            report.verdict_changes.append(change)
        else:
            report.reason_changes.append(change)
    return report


def render_text(report: ReplayReport) -> str:
    """A human-readable impact report."""
    lines = [
        f"replayed {report.replayed} decisions under policy {report.policy_revision} "
        f"({report.policy_digest[:19]}…): {report.unchanged} unchanged, "
        f"{len(report.verdict_changes)} change verdict, {len(report.reason_changes)} change reasons"
    ]
    if report.masked:
        lines.append(
            f"note: {report.masked} stored inputs had masked paths; their replay may differ "
            "because the policy sees the masked values"
        )
    for title, changes in (
        ("verdict changes", report.verdict_changes),
        ("reason changes", report.reason_changes),
    ):
        if not changes:
            continue
        lines.append(f"{title}:")
        for c in changes:
            lines.append(
                f"  {c.timestamp} {c.decision_id} {c.release_id} ({c.service} -> "
                f"{c.environment}, {c.stage}): {c.old_verdict} -> {c.new_verdict}"
            )
            if c.added:
                lines.append(f"    + {', '.join(c.added)}")
            if c.removed:
                lines.append(f"    - {', '.join(c.removed)}")
            lines.extend(f"      {m}" for m in c.new_messages)
    return "\n".join(lines) + "\n"
