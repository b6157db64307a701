"""``releasegate bundle ...`` in-process: exit codes 0 ok / 1 failed or stale / 2 usage."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from engine.adapters.cli import main
from tests.bundles.support import KEY_ID, POLICY_SRC, flip_rego_byte, rewrite


def _keygen(tmp_path: Path) -> tuple[Path, Path]:
    priv, pub = tmp_path / "k.pem", tmp_path / "k.pub.pem"
    assert main(["bundle", "keygen", "--out", str(priv), "--public-out", str(pub)]) == 0
    return priv, pub


def test_build_verify_info_check_fresh(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    priv, pub = _keygen(tmp_path)
    assert priv.stat().st_mode & 0o777 == 0o600
    out = tmp_path / "b.tar.gz"
    exported = tmp_path / "exported.pub.pem"
    argv = ["bundle", "build", str(POLICY_SRC), "--out", str(out), "--signing-key", str(priv)]
    assert main([*argv, "--key-id", KEY_ID, "--public-out", str(exported)]) == 0
    assert exported.read_bytes() == pub.read_bytes()
    assert "revision sha256:" in capsys.readouterr().out

    assert main(["bundle", "verify", str(out), "--public-key", str(pub), "--key-id", KEY_ID]) == 0
    assert f"key {KEY_ID}" in capsys.readouterr().out

    assert main(["bundle", "info", str(out)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["key_id"] == KEY_ID and info["digest"].startswith("sha256:")

    fresh = ["bundle", "check-fresh", str(out), str(POLICY_SRC), "--public-key", str(pub)]
    assert main(fresh) == 0
    assert capsys.readouterr().out.startswith("fresh:")


def test_verify_failure_exits_1_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    priv, pub = _keygen(tmp_path)
    out = tmp_path / "b.tar.gz"
    main(["bundle", "build", str(POLICY_SRC), "--out", str(out), "--signing-key", str(priv)])
    bad = rewrite(out, tmp_path / "bad.tar.gz", flip_rego_byte)
    capsys.readouterr()
    assert main(["bundle", "verify", str(bad), "--public-key", str(pub)]) == 1
    assert "releasegate/example.rego: digest mismatch" in capsys.readouterr().err
    assert main(["bundle", "verify", str(out), "--public-key", str(pub), "--key-id", "x"]) == 1


def test_stale_bundle_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    priv, _ = _keygen(tmp_path)
    src = Path(shutil.copytree(POLICY_SRC, tmp_path / "src"))
    out = tmp_path / "b.tar.gz"
    main(["bundle", "build", str(src), "--out", str(out), "--signing-key", str(priv)])
    (src / "releasegate" / "example.rego").write_text("package releasegate.example\n\nx := 2\n")
    capsys.readouterr()
    assert main(["bundle", "check-fresh", str(out), str(src)]) == 1
    err = capsys.readouterr().err
    assert "stale: releasegate/example.rego differs" in err and "build-bundle.sh" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["bundle", "verify", "x.tar.gz"],  # --public-key missing
        ["bundle", "verify", "missing.tar.gz", "--public-key", "missing.pem"],
        ["bundle", "build", "missing-dir", "--out", "o.tar.gz", "--signing-key", "missing.pem"],
        ["bundle", "keygen", "--out", "k.pem", "--public-out", "k.pub", "--alg", "HS256"],
        ["bundle"],
    ],
    ids=["no-key-flag", "missing-files", "missing-key", "bad-alg", "no-subcommand"],
)
def test_usage_errors_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2


def test_keygen_refuses_to_overwrite(tmp_path: Path) -> None:
    priv, pub = _keygen(tmp_path)
    before = priv.read_bytes()
    assert main(["bundle", "keygen", "--out", str(priv), "--public-out", str(pub)]) == 2
    assert priv.read_bytes() == before
    assert main(["bundle", "keygen", "--out", str(priv), "--public-out", str(pub), "--force"]) == 0
    assert priv.read_bytes() != before
