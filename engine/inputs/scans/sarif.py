"""SARIF 2.1.0 logs: Trivy's (``--format sarif``) and any tool using ``security-severity``.

Severity, in order: a severity tag on the rule (Trivy tags rules ``CRITICAL`` ... ``LOW``),
else the ``security-severity`` property of the result or the rule (GitHub's convention:
>= 9.0 CRITICAL, >= 7.0 HIGH, >= 4.0 MEDIUM, > 0 LOW), else ``UNKNOWN``. The SARIF
``level`` is not a vulnerability severity and is not used.

Package, installed and fixed version are read from Trivy's result message
(``Package: ...``/``Installed Version: ...``/``Fixed Version: ...``); generic SARIF
results carry no package, so they only de-duplicate with other package-less findings.
"""

from __future__ import annotations

import re
from typing import Final

from engine.inputs.scans.access import Node
from engine.inputs.scans.normalize import (
    SEVERITIES,
    ParsedReport,
    RawFinding,
    severity_from_score,
    source_label,
    split_versions,
)
from engine.models.vulnerabilities import Severity

_TAG_SEVERITY: Final[dict[str, Severity]] = {s: s for s in SEVERITIES}
_MESSAGE_FIELD: Final = re.compile(r"^(Package|Installed Version|Fixed Version):(.*)$", re.M)


def _rules(driver: Node) -> tuple[list[Node], dict[str, Node]]:
    rules = driver.child("rules").items()
    by_id: dict[str, Node] = {}
    for rule in rules:
        rule_id = rule.child("id").opt_str()
        if rule_id is not None:
            by_id.setdefault(rule_id, rule)
    return rules, by_id


def _rule_for(result: Node, rules: list[Node], by_id: dict[str, Node]) -> Node | None:
    index = result.child("ruleIndex").opt_float()
    if index is None:
        index = result.child("rule").child("index").opt_float()
    if index is not None and index.is_integer() and 0 <= index < len(rules):
        return rules[int(index)]
    rule_id = result.child("ruleId").opt_str() or result.child("rule").child("id").opt_str()
    return by_id.get(rule_id) if rule_id else None


def _severity(result: Node, rule: Node | None) -> Severity:
    if rule is not None:
        for tag in rule.child("properties").child("tags").str_items():
            tagged = _TAG_SEVERITY.get(tag)
            if tagged is not None:
                return tagged
    for holder in (result, rule):
        if holder is None:
            continue
        score = holder.child("properties").child("security-severity").opt_float(numeric_str=True)
        if score is not None:
            return severity_from_score(score)
    return "UNKNOWN"


def _finding(result: Node, rule: Node | None, source: str) -> RawFinding | None:
    result.require_obj()
    kind = result.child("kind").opt_str() or "fail"
    if kind != "fail" or result.child("baselineState").opt_str() == "absent":
        return None  # passes, informational results and fixed-since-baseline are not findings
    rule_id = result.child("ruleId").opt_str() or result.child("rule").child("id").opt_str()
    if rule_id is None and rule is not None:
        rule_id = rule.child("id").opt_str()
    if rule_id is None:
        result.child("ruleId").fail("is required (no ruleId, rule.id or rule at ruleIndex)")
    message = result.child("message").child("text").opt_str() or ""
    fields = {key: value.strip() for key, value in _MESSAGE_FIELD.findall(message)}
    properties = rule.child("properties") if rule is not None else None
    score = vector = None
    if properties is not None:
        score = properties.child("cvssv3_baseScore").opt_float(numeric_str=True)
        vector = properties.child("cvssv3_vector").opt_str()
    return RawFinding(
        id=rule_id,
        source=source,
        severity=_severity(result, rule),
        cvss_score=score,
        cvss_vector=vector,
        package_name=fields.get("Package") or None,
        installed_version=fields.get("Installed Version") or None,
        fixed_versions=split_versions(fields.get("Fixed Version")),
    )


def parse_sarif(root: Node) -> ParsedReport:
    """Read a SARIF 2.1.0 log; every ``fail`` result of every run is a finding."""
    root.require_obj()
    version = root.child("version")
    if version.opt_str() != "2.1.0":
        version.fail(f"unsupported SARIF version {version.value!r} (expected '2.1.0')")
    runs = root.child("runs").require_items()
    report = ParsedReport(format="sarif")
    for run in runs:
        run.require_obj()
        driver = run.child("tool").child("driver").require_obj()
        name = driver.child("name").opt_str()
        version_text = (
            driver.child("version").opt_str() or driver.child("semanticVersion").opt_str()
        )
        report.scanner = report.scanner or name
        report.scanner_version = report.scanner_version or version_text
        for invocation in run.child("invocations").items():
            started = invocation.child("startTimeUtc").opt_str()
            report.scanned_at = report.scanned_at or started
        properties = run.child("properties")
        report.artifact_name = report.artifact_name or properties.child("imageName").opt_str()
        for repo_digest in properties.child("repoDigests").str_items():
            report.add_digest(repo_digest)
        report.add_digest(properties.child("imageID").opt_str())
        rules, by_id = _rules(driver)
        source = source_label("sarif", name, version_text)
        for result in run.child("results").items():
            finding = _finding(result, _rule_for(result, rules, by_id), source)
            if finding is not None:
                report.findings.append(finding)
    return report
