"""``--format github``: GitHub Actions workflow commands and a job summary.

Each rollback reason is an ``::error``, each pause reason and each warning a ``::warning``
(annotations on the run, titled with the reason code). When ``GITHUB_STEP_SUMMARY`` is set,
a Markdown summary is appended to that file. Escaping follows GitHub's rules for workflow
commands: in the message ``%``, ``\\r`` and ``\\n``; in property values also ``:`` and ``,``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from engine.models.common import Verdict
from engine.models.decision import Decision

SUMMARY_ENV = "GITHUB_STEP_SUMMARY"
_ICONS = {Verdict.ALLOW: "✅", Verdict.PAUSE: "⏸️", Verdict.ROLLBACK: "⛔"}


def escape_data(value: str) -> str:
    """Escape a workflow command's message."""
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: str) -> str:
    """Escape a workflow command's property value."""
    return escape_data(value).replace(":", "%3A").replace(",", "%2C")


def command(name: str, message: str, **properties: str) -> str:
    """``::name key=value,...::message`` with both parts escaped."""
    props = ",".join(f"{k}={escape_property(v)}" for k, v in properties.items())
    return f"::{name}{' ' + props if props else ''}::{escape_data(message)}"


def _cell(value: str) -> str:
    return value.replace("|", "\\|").replace("\r", "").replace("\n", "<br>")


def summary_markdown(decision: Decision) -> str:
    """The job summary: verdict, reasons table, warnings, and where the record is."""
    release = decision.release
    lines = [
        f"## {_ICONS[decision.verdict]} releasegate: {decision.verdict.value.upper()}",
        "",
        f"`{_cell(str(release.get('id', '')))}` · service "
        f"`{_cell(str(release.get('service', '')))}` → "
        f"`{_cell(str(release.get('environment', '')))}` ({release.get('stage', '')})",
        "",
    ]
    if decision.reasons:
        lines += ["| verdict | code | policy | message |", "|---|---|---|---|"]
        lines += [
            f"| {r.verdict.value} | `{r.code}` | {r.policy} | {_cell(r.message)} |"
            for r in decision.reasons
        ]
    else:
        lines.append("All enforced policies pass.")
    if decision.warnings:
        lines += ["", "**Warnings**", ""]
        lines += [f"- `{w.code}` ({w.policy}): {_cell(w.message)}" for w in decision.warnings]
    lines += [
        "",
        f"Decision `{decision.decision_id}` · policy `{decision.policy.revision}`"
        + (f" · log index {decision.log.index}" if decision.log is not None else ""),
        "",
    ]
    return "\n".join(lines)


class GithubFormat:
    """Workflow commands on stdout; the summary goes to ``$GITHUB_STEP_SUMMARY`` if set."""

    def __init__(self, *, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ

    def format(self, decision: Decision) -> str:
        """The workflow commands (and, as a side effect, the appended job summary)."""
        lines = []
        for r in decision.reasons:
            name = "error" if r.verdict is Verdict.ROLLBACK else "warning"
            lines.append(command(name, r.message, title=r.code))
        for w in decision.warnings:
            lines.append(command("warning", w.message, title=w.code))
        lines.append(
            f"releasegate: {decision.verdict.value} for {decision.release.get('id', '')} "
            f"(decision {decision.decision_id})"
        )
        target = self._environ.get(SUMMARY_ENV)
        if target:
            with Path(target).open("a", encoding="utf-8") as out:
                out.write(summary_markdown(decision))
        return "\n".join(lines) + "\n"
