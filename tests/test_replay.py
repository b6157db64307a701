"""``releasegate replay``: same bundle replays exactly; a changed policy shows its impact."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from engine.adapters.cli import main
from tests.conftest import POLICIES, REPO

EXAMPLES = REPO / "examples" / "requests"
BUNDLE = REPO / "bundles" / "releasegate.tar.gz"
PUBLIC_KEY = REPO / "bundles" / "releasegate.pub.pem"


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory, opa_binary: Path) -> Path:
    state = tmp_path_factory.mktemp("replay-state")
    for name in ("allow", "pause", "rollback"):
        main(
            [
                "check",
                "--local",
                "--state-dir",
                str(state),
                "--request",
                str(EXAMPLES / f"{name}.json"),
            ]
        )
    return state


def _replay(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, object]]:
    capsys.readouterr()
    code = main(["replay", "--format", "json", *argv])
    return code, json.loads(capsys.readouterr().out)


def test_same_signed_bundle_replays_every_decision_exactly(
    state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = _replay(
        capsys,
        "--state-dir",
        str(state_dir),
        "--bundle",
        str(BUNDLE),
        "--public-key",
        str(PUBLIC_KEY),
    )
    assert code == 0
    assert report["replayed"] == 3
    assert report["unchanged"] == 3
    assert report["changes"] == []


def test_policy_change_reports_verdict_changes(
    state_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    relaxed = tmp_path / "policies"
    shutil.copytree(POLICIES, relaxed)
    data_file = relaxed / "releasegate" / "config" / "data.json"
    data = json.loads(data_file.read_text())
    data["approvals"]["required"] = {"*": 0}
    data_file.write_text(json.dumps(data))

    code, report = _replay(
        capsys, "--state-dir", str(state_dir), "--bundle", str(relaxed), "--fail-on-change"
    )
    assert code == 1
    assert report["verdict_changed"] == 1
    change = report["changes"][0]
    assert change["verdict"] == {"old": "pause", "new": "allow"}
    assert change["reasons_removed"] == ["approval_missing"]
    # The rollback decision also loses approval_missing, but keeps its verdict.
    assert report["reasons_changed"] == 1


def test_replay_from_an_export_with_filters(
    state_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = tmp_path / "export.jsonl"
    assert main(["log", "export", "--state-dir", str(state_dir), "--out", str(export)]) == 0
    code, report = _replay(
        capsys,
        "--export",
        str(export),
        "--bundle",
        str(BUNDLE),
        "--public-key",
        str(PUBLIC_KEY),
        "--environment",
        "prod",
    )
    assert code == 0
    assert report["replayed"] == 2

    capsys.readouterr()
    assert (
        main(
            [
                "replay",
                "--export",
                str(export),
                "--bundle",
                str(BUNDLE),
                "--public-key",
                str(PUBLIC_KEY),
                "--since",
                "2999-01-01T00:00:00+00:00",
            ]
        )
        == 0
    )
    assert "replayed 0 decisions" in capsys.readouterr().out


def test_bad_export_is_an_input_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    assert main(["replay", "--export", str(bad), "--bundle", str(POLICIES)]) == 2
    assert "not JSON" in capsys.readouterr().err


def test_signed_bundle_without_its_key_is_refused(
    state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", "--state-dir", str(state_dir), "--bundle", str(BUNDLE)]) == 1
    assert "verification key not provided" in capsys.readouterr().err
