"""``--format junit``: JUnit XML, one test case per policy area.

CI systems (GitLab ``artifacts:reports:junit``, Jenkins, ...) show a release gate like a test
run: an area with enforced reasons fails (``<failure type="rollback|pause">`` lists them),
warnings go to the test case's ``<system-out>``. When the engine could not decide, the areas
are ``skipped`` and a ``releasegate`` test case carries the failure. ``admission`` only
applies at Kubernetes admission and is ``skipped`` for a CI check without admission findings.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import defaultdict

from engine.models.decision import Decision, Reason, Warning

AREAS = ("provenance", "vulnerabilities", "slo", "approvals", "freeze", "admission")
_PREFIX = "releasegate."


def _area(policy: str) -> str:
    return policy[len(_PREFIX) :] if policy.startswith(_PREFIX) else "releasegate"


def _reason_line(r: Reason) -> str:
    return f"[{r.verdict.value}] {r.code}: {r.message}"


def _warning_line(w: Warning) -> str:
    return f"[warning] {w.code}: {w.message}"


class JunitFormat:
    """JUnit XML (the widely read Jenkins/Surefire dialect)."""

    def format(self, decision: Decision) -> str:
        """The decision as a ``<testsuites>`` document."""
        reasons: dict[str, list[Reason]] = defaultdict(list)
        warnings: dict[str, list[Warning]] = defaultdict(list)
        for r in decision.reasons:
            reasons[_area(r.policy)].append(r)
        for w in decision.warnings:
            warnings[_area(w.policy)].append(w)
        engine_failed = any(r.code == "engine_unavailable" for r in decision.reasons)
        areas = list(AREAS)
        extra = sorted((set(reasons) | set(warnings)) - set(AREAS))
        areas.extend(extra)
        release = decision.release
        classname = f"releasegate.{release.get('environment', '-')}.{release.get('service', '-')}"
        suite = ET.Element(
            "testsuite",
            name=f"releasegate {release.get('id', '')}",
            timestamp=decision.timestamp.rstrip("Z"),
        )
        props = ET.SubElement(suite, "properties")
        for name, value in (
            ("decision_id", decision.decision_id),
            ("verdict", decision.verdict.value),
            ("artifact_digest", str(decision.artifact.get("digest", ""))),
            ("policy_revision", decision.policy.revision),
        ):
            ET.SubElement(props, "property", name=name, value=value)
        failures = skipped = 0
        for area in areas:
            case = ET.SubElement(suite, "testcase", classname=classname, name=area)
            found, warned = reasons.get(area, []), warnings.get(area, [])
            if found:
                failures += 1
                worst = max((r.verdict for r in found), key=lambda v: v.severity)
                failure = ET.SubElement(
                    case,
                    "failure",
                    type=worst.value,
                    message="; ".join(f"{r.code}: {r.message}" for r in found),
                )
                failure.text = "\n".join(_reason_line(r) for r in found)
            elif area in AREAS and engine_failed:
                skipped += 1
                ET.SubElement(case, "skipped", message="not evaluated: the engine could not decide")
            elif area == "admission" and not warned:
                skipped += 1
                ET.SubElement(case, "skipped", message="applies only at Kubernetes admission")
            if warned:
                ET.SubElement(case, "system-out").text = "\n".join(_warning_line(w) for w in warned)
        counts = {
            "tests": str(len(areas)),
            "failures": str(failures),
            "errors": "0",
            "skipped": str(skipped),
        }
        for key, value in counts.items():
            suite.set(key, value)
        root = ET.Element("testsuites", {"name": "releasegate", **counts})
        root.append(suite)
        ET.indent(root)
        body = ET.tostring(root, encoding="unicode")
        return f'<?xml version="1.0" encoding="UTF-8"?>\n{body}\n'


__all__ = ["AREAS", "JunitFormat"]
