"""``--format text``: verdict first, then reasons grouped by policy area."""

from __future__ import annotations

from collections import defaultdict

from engine.models.common import Verdict
from engine.models.decision import Decision

_COLORS = {Verdict.ALLOW: "\033[32m", Verdict.PAUSE: "\033[33m", Verdict.ROLLBACK: "\033[31m"}
_RESET = "\033[0m"


class TextFormat:
    """Human-readable output; colour on a TTY."""

    def __init__(self, *, color: bool = False) -> None:
        self._color = color

    def _verdict(self, verdict: Verdict) -> str:
        label = verdict.value.upper()
        return f"{_COLORS[verdict]}{label}{_RESET}" if self._color else label

    def format(self, decision: Decision) -> str:
        """Verdict, release, reasons by area, warnings, then the decision id."""
        release = decision.release
        lines = [
            f"{self._verdict(decision.verdict)}  {release.get('id')} "
            f"({release.get('service')} -> {release.get('environment')}, {release.get('stage')})"
        ]
        by_area: dict[str, list[str]] = defaultdict(list)
        for reason in decision.reasons:
            by_area[reason.policy].append(
                f"  [{reason.verdict.value}] {reason.code}: {reason.message}"
            )
        for area in sorted(by_area):
            lines.append(f"{area}:")
            lines.extend(by_area[area])
        if decision.warnings:
            lines.append("warnings:")
            lines.extend(f"  {w.code}: {w.message}" for w in decision.warnings)
        if not decision.reasons:
            lines.append("all enforced policies pass")
        lines.append(f"decision_id: {decision.decision_id}")
        lines.append(f"policy: {decision.policy.revision} ({decision.policy.digest[:19]}…)")
        if decision.log is not None:
            lines.append(f"log index: {decision.log.index}")
        return "\n".join(lines) + "\n"
