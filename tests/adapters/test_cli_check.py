"""``releasegate check`` in-process: exit codes, formats, and bad input (never a traceback)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.adapters.cli import main
from tests.conftest import ASSETS, REPO

EXAMPLES = REPO / "examples" / "requests"


@pytest.mark.parametrize(
    ("name", "code", "label"),
    [
        ("allow", 0, "ALLOW"),
        ("pause", 3, "PAUSE"),
        ("rollback", 4, "ROLLBACK"),
    ],
)
def test_examples_exit_with_the_contract_codes(
    name: str,
    code: int,
    label: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    opa_binary: Path,
) -> None:
    argv = [
        "check",
        "--local",
        "--state-dir",
        str(tmp_path),
        "--request",
        str(EXAMPLES / f"{name}.json"),
    ]
    assert main(argv) == code
    out = capsys.readouterr().out
    assert out.startswith(label)
    assert "decision_id: " in out


def test_json_format_is_the_decision(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], opa_binary: Path
) -> None:
    argv = [
        "check",
        "--local",
        "--state-dir",
        str(tmp_path),
        "--format",
        "json",
        "--request",
        str(EXAMPLES / "pause.json"),
    ]
    assert main(argv) == 3
    decision = json.loads(capsys.readouterr().out)
    assert decision["verdict"] == "pause"
    assert decision["reasons"][0]["code"] == "approval_missing"
    assert decision["log"]["index"] == 0
    assert decision["signature"]["alg"] == "Ed25519"


def test_flags_assemble_the_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], opa_binary: Path
) -> None:
    argv = [
        "check",
        "--local",
        "--state-dir",
        str(tmp_path),
        "--artifact",
        "ghcr.io/acme/payments@sha256:a0cfc71271d6e278e57cd332ff957c3f7043fdda354c4cbb190a30d56efa01bf",
        "--attestation",
        str(ASSETS / "sigstore/conformance/happy-path-intoto-in-dsse-v3/bundle.sigstore.json"),
        "--scan",
        "cyclonedx:" + str(ASSETS / "scanners/trivy/npm.trivy.cdx.json"),
        "--service",
        "payments",
        "--environment",
        "staging",
        "--stage",
        "deploy",
        "--release-id",
        "payments-1.4.2",
    ]
    assert main(argv) == 0, capsys.readouterr()


def _bad(tmp_path: Path, document: object) -> list[str]:
    path = tmp_path / "request.json"
    path.write_text(json.dumps(document) if not isinstance(document, str) else document)
    return ["check", "--local", "--state-dir", str(tmp_path / "state"), "--request", str(path)]


GOOD = json.loads((EXAMPLES / "allow.json").read_text())


@pytest.mark.parametrize(
    ("document", "needle"),
    [
        ("{not json", "not valid JSON"),
        ({**GOOD, "surprise": 1}, "surprise"),
        ({**GOOD, "artifact": {"digest": "sha256:ABC"}}, "artifact.digest"),
        ({**GOOD, "artifact": {"digest": "md5:" + "a" * 32}}, "artifact.digest"),
        ({**GOOD, "release": {**GOOD["release"], "stage": "yolo"}}, "release.stage"),
        (
            {**GOOD, "release": {k: v for k, v in GOOD["release"].items() if k != "service"}},
            "release.service",
        ),
        ([1, 2, 3], "expected a JSON object"),
        (
            {**GOOD, "evidence": {"scans": [{"format": "nessus", "report": {}}]}},
            "evidence.scans.0.format",
        ),
        (
            {
                **GOOD,
                "evidence": {"scans": [{"format": "trivy", "report": {"SchemaVersion": "x"}}]},
            },
            "evidence.scans[0]",
        ),
    ],
)
def test_bad_input_exits_2_naming_the_field(
    document: object,
    needle: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    opa_binary: Path,
) -> None:
    assert main(_bad(tmp_path, document)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # never a verdict
    assert needle in captured.err
    assert "Traceback" not in captured.err


def test_missing_request_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--local", "--request", str(tmp_path / "nope.json")]) == 2
    assert "cannot read decision request" in capsys.readouterr().err


def test_local_or_server_must_be_chosen(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RELEASEGATE_SERVER", raising=False)
    assert main(["check", "--request", str(EXAMPLES / "allow.json")]) == 2
    assert "--local" in capsys.readouterr().err


def test_missing_flags_are_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--local", "--artifact", "sha256:" + "a" * 64]) == 2
    assert "--service" in capsys.readouterr().err


def test_unknown_stage_flag_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--local", "--stage", "yolo"]) == 2
