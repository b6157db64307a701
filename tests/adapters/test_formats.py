"""``check --format sarif|junit|github``: SARIF valid against the SARIF 2.1.0 schema, JUnit
parsed back with ``xml.etree``, GitHub workflow commands escaped per GitHub's rules."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from engine.adapters.formats import OutputFormat
from engine.adapters.formats.github import GithubFormat, command, escape_data, escape_property
from engine.adapters.formats.junit import AREAS, JunitFormat
from engine.adapters.formats.sarif import SarifFormat
from engine.models.common import Verdict
from engine.models.decision import Decision, EngineInfo, PolicyInfo, Reason, Warning
from tests.conftest import ASSETS

SARIF_SCHEMA = json.loads((ASSETS / "schemas" / "sarif-2.1.0-rtm.5.json").read_text())


def decision(
    verdict: Verdict, reasons: list[Reason], warnings: tuple[Warning, ...] | list[Warning] = ()
) -> Decision:
    return Decision(
        decision_id="0193a0c4-0000-7000-8000-000000000001",
        timestamp="2026-11-26T12:00:00.123456Z",
        verdict=verdict,
        reasons=reasons,
        warnings=list(warnings),
        release={"id": "payments-1.4.2", "service": "payments", "environment": "prod",
                 "stage": "deploy"},
        artifact={"uri": "ghcr.io/acme/payments", "digest": "sha256:" + "a" * 64},
        policy=PolicyInfo(revision="r1", digest="sha256:" + "0" * 64),
        engine=EngineInfo(name="opa", version="1.22.3"),
        input_digest="sha256:" + "1" * 64,
    )  # fmt: skip


CRIT = Reason(
    code="vuln_critical",
    verdict=Verdict.ROLLBACK,
    policy="releasegate.vulnerabilities",
    message="CVE-2019-14697 in musl 1.1.20-r4 (CRITICAL, fixed in 1.1.20-r5)",
)
CRIT2 = Reason(
    code="vuln_critical",
    verdict=Verdict.ROLLBACK,
    policy="releasegate.vulnerabilities",
    message="CVE-2019-1549 in libssl 1.1.1c-r0",
)
APPROVAL = Reason(
    code="approval_missing",
    verdict=Verdict.PAUSE,
    policy="releasegate.approvals",
    message="0 of 1 approvals",
)
WAIVED = Warning(
    code="exception_applied",
    policy="releasegate.exceptions",
    message="slo_slow_burn waived by EX-1 until 2026-12-01",
)
WARN = Warning(
    code="scan_missing", policy="releasegate.vulnerabilities", message="(warn mode) no scan report"
)
ENGINE = Reason(code="engine_unavailable", verdict=Verdict.PAUSE, policy="releasegate",
                message="the policy engine could not decide: timeout")  # fmt: skip

CASES = {
    "allow": decision(Verdict.ALLOW, []),
    "allow-with-warnings": decision(Verdict.ALLOW, [], [WARN, WAIVED]),
    "pause": decision(Verdict.PAUSE, [APPROVAL], [WAIVED]),
    "rollback": decision(Verdict.ROLLBACK, [CRIT, CRIT2, APPROVAL], [WARN]),
    "engine-unavailable": decision(Verdict.PAUSE, [ENGINE]),
}


# -- SARIF -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CASES))
def test_sarif_is_valid_sarif_2_1_0(name: str) -> None:
    d = CASES[name]
    doc = json.loads(SarifFormat().format(d))
    jsonschema.Draft4Validator(SARIF_SCHEMA).validate(doc)
    run = doc["runs"][0]
    results = run["results"]
    assert len(results) == len(d.reasons) + len(d.warnings)
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == list(dict.fromkeys(
        [x.code for x in d.reasons] + [w.code for w in d.warnings]))  # fmt: skip
    for result in results:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
    assert (
        run["invocations"][0]["exitCode"]
        == {"allow": 0, "pause": 3, "rollback": 4}[d.verdict.value]
    )
    assert run["properties"]["decision_id"] == d.decision_id


def test_sarif_levels_follow_verdicts() -> None:
    doc = json.loads(SarifFormat().format(CASES["rollback"]))
    levels = [(r["ruleId"], r["level"]) for r in doc["runs"][0]["results"]]
    assert levels == [("vuln_critical", "error"), ("vuln_critical", "error"),
                      ("approval_missing", "warning"), ("scan_missing", "note")]  # fmt: skip


def test_sarif_schema_rejects_a_broken_log() -> None:
    """The vendored schema really constrains the output (a test that can fail)."""
    doc = json.loads(SarifFormat().format(CASES["pause"]))
    doc["runs"][0]["results"][0]["level"] = "fatal"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(SARIF_SCHEMA).validate(doc)


# -- JUnit -------------------------------------------------------------------------------


def parse_junit(text: str) -> ET.Element:
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    return ET.fromstring(text.split("\n", 1)[1])


def cases_by_name(root: ET.Element) -> dict[str, ET.Element]:
    return {c.attrib["name"]: c for c in root.iter("testcase")}


def test_junit_one_case_per_area_failures_carry_reasons() -> None:
    root = parse_junit(JunitFormat().format(CASES["rollback"]))
    assert root.tag == "testsuites"
    suite = root.find("testsuite")
    assert suite is not None
    cases = cases_by_name(root)
    assert list(cases) == list(AREAS)
    vuln = cases["vulnerabilities"].find("failure")
    assert vuln is not None and vuln.attrib["type"] == "rollback"
    assert "CVE-2019-14697" in (vuln.text or "") and "CVE-2019-1549" in (vuln.text or "")
    approvals = cases["approvals"].find("failure")
    assert approvals is not None and approvals.attrib["type"] == "pause"
    out = cases["vulnerabilities"].find("system-out")
    assert out is not None and "scan_missing" in (out.text or "")
    for area in ("provenance", "slo", "freeze"):
        assert list(cases[area]) == []  # passed
    assert cases["admission"].find("skipped") is not None
    assert (suite.attrib["tests"], suite.attrib["failures"], suite.attrib["skipped"]) == (
        "6", "2", "1")  # fmt: skip
    props = {p.attrib["name"]: p.attrib["value"] for p in suite.iter("property")}
    assert props["verdict"] == "rollback" and props["decision_id"] == CASES["rollback"].decision_id


def test_junit_allow_passes_and_exception_warnings_get_a_case() -> None:
    root = parse_junit(JunitFormat().format(CASES["allow-with-warnings"]))
    cases = cases_by_name(root)
    assert list(cases) == [*AREAS, "exceptions"]
    assert root.attrib["failures"] == "0"
    out = cases["exceptions"].find("system-out")
    assert out is not None and "EX-1" in (out.text or "")


def test_junit_engine_unavailable_skips_areas() -> None:
    root = parse_junit(JunitFormat().format(CASES["engine-unavailable"]))
    cases = cases_by_name(root)
    failure = cases["releasegate"].find("failure")
    assert failure is not None and "engine_unavailable" in failure.attrib["message"]
    assert all(cases[a].find("skipped") is not None for a in AREAS)


def test_junit_escapes_markup_in_messages() -> None:
    nasty = Reason(code="approval_missing", verdict=Verdict.PAUSE, policy="releasegate.approvals",
                   message='<script>&"quotes"</script>')  # fmt: skip
    root = parse_junit(JunitFormat().format(decision(Verdict.PAUSE, [nasty])))
    failure = cases_by_name(root)["approvals"].find("failure")
    assert failure is not None and failure.attrib["message"].endswith('<script>&"quotes"</script>')


# -- GitHub ------------------------------------------------------------------------------


def test_github_escaping_rules() -> None:
    assert escape_data("100% done\r\nnext") == "100%25 done%0D%0Anext"
    assert escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"
    assert command("error", "x: y, z", title="t:1,2") == "::error title=t%3A1%2C2::x: y, z"


def test_github_commands_per_reason_and_warning(tmp_path: Path) -> None:
    reason = Reason(code="vuln_critical", verdict=Verdict.ROLLBACK,
                    policy="releasegate.vulnerabilities", message="line1\nline2 100%")  # fmt: skip
    d = decision(Verdict.ROLLBACK, [reason, APPROVAL], [WARN])
    out = GithubFormat(environ={}).format(d).splitlines()
    assert out[0] == "::error title=vuln_critical::line1%0Aline2 100%25"
    assert out[1] == "::warning title=approval_missing::0 of 1 approvals"
    assert out[2] == "::warning title=scan_missing::(warn mode) no scan report"
    assert out[3].startswith("releasegate: rollback for payments-1.4.2")
    assert not list(tmp_path.iterdir())


def test_github_step_summary_is_appended(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n")
    fmt = GithubFormat(environ={"GITHUB_STEP_SUMMARY": str(summary)})
    fmt.format(CASES["pause"])
    fmt.format(CASES["allow"])
    text = summary.read_text()
    assert text.startswith("# earlier step\n")
    assert "releasegate: PAUSE" in text and "releasegate: ALLOW" in text
    assert "| pause | `approval_missing` | releasegate.approvals | 0 of 1 approvals |" in text
    assert "All enforced policies pass." in text
    assert CASES["pause"].decision_id in text


def test_github_summary_escapes_table_cells(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    bad = Reason(code="approval_missing", verdict=Verdict.PAUSE, policy="releasegate.approvals",
                 message="a | b\nc")  # fmt: skip
    GithubFormat(environ={"GITHUB_STEP_SUMMARY": str(summary)}).format(
        decision(Verdict.PAUSE, [bad])
    )
    assert "a \\| b<br>c |" in summary.read_text()


@pytest.mark.parametrize("choice", ["sarif", "junit", "github"])
def test_output_format_dispatch(choice: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    fmt: Any = OutputFormat(choice).to_format()
    assert fmt.format(CASES["allow"]).endswith("\n")
