"""``--format sarif``: SARIF 2.1.0 from the result model (conftest ``sarif.go`` idea).

One result per reason and per warning; ``ruleId`` is the reason code and every code used
has a rule in ``tool.driver.rules``. Levels: ``error`` for a rollback reason, ``warning``
for a pause reason, ``note`` for a warning. ``invocations[0].exitCode`` is the exit code
of ``check`` (contract §6), so a SARIF consumer sees the same gate result as the shell.
"""

from __future__ import annotations

import json
from typing import Any

from engine import __version__
from engine.adapters.exit_codes import exit_code
from engine.models.common import Verdict
from engine.models.decision import Decision

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/releasegate/releasegate"
_LEVELS = {Verdict.ROLLBACK: "error", Verdict.PAUSE: "warning", Verdict.ALLOW: "note"}


def _rule(code: str, policy: str, level: str) -> dict[str, Any]:
    return {
        "id": code,
        "name": "".join(part.capitalize() for part in code.split("_")),
        "shortDescription": {"text": f"{code} ({policy})"},
        "defaultConfiguration": {"level": level},
        "properties": {"policy": policy},
    }


class SarifFormat:
    """A SARIF 2.1.0 log with one run."""

    def document(self, decision: Decision) -> dict[str, Any]:
        """The SARIF log as a JSON-ready dict."""
        rules: dict[str, dict[str, Any]] = {}
        results: list[dict[str, Any]] = []

        def add(code: str, policy: str, level: str, message: str, verdict: str | None) -> None:
            if code not in rules:
                rules[code] = _rule(code, policy, level)
            props: dict[str, Any] = {"policy": policy, "decision_id": decision.decision_id}
            if verdict is not None:
                props["verdict"] = verdict
            results.append(
                {
                    "ruleId": code,
                    "ruleIndex": list(rules).index(code),
                    "level": level,
                    "message": {"text": message},
                    "properties": props,
                }
            )

        for r in decision.reasons:
            add(r.code, r.policy, _LEVELS[r.verdict], r.message, r.verdict.value)
        for w in decision.warnings:
            add(w.code, w.policy, "note", w.message, None)
        code = exit_code(decision.verdict)
        return {
            "$schema": SARIF_SCHEMA,
            "version": "2.1.0",
            "runs": [
                {
                    "tool": {
                        "driver": {
                            "name": "releasegate",
                            "version": __version__,
                            "informationUri": INFORMATION_URI,
                            "rules": list(rules.values()),
                        }
                    },
                    "invocations": [
                        {
                            "executionSuccessful": True,
                            "exitCode": code,
                            "exitCodeDescription": decision.verdict.value,
                        }
                    ],
                    "results": results,
                    "properties": {
                        "decision_id": decision.decision_id,
                        "verdict": decision.verdict.value,
                        "release": decision.release,
                        "artifact": decision.artifact,
                        "policy": decision.policy.model_dump(mode="json"),
                    },
                }
            ],
        }

    def format(self, decision: Decision) -> str:
        """The SARIF log, indented."""
        return json.dumps(self.document(decision), indent=2) + "\n"
