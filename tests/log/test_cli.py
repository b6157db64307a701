"""``releasegate keys ...`` and ``releasegate log ...`` called in-process through ``main``."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from engine.adapters.cli import main
from engine.log.decision_log import DecisionLog, open_decision_log
from tests.log.helpers import fill

TOKEN = "auditor-token"


@pytest.fixture
def state(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A state directory with a key (made by the CLI) and 6 logged decisions."""
    state_dir = tmp_path / "state"
    assert main(["keys", "generate", "--state-dir", str(state_dir)]) == 0
    assert "key_id:" in capsys.readouterr().out
    log = open_decision_log(state_dir, create_key=False)
    fill(log, 6)
    log.close()
    return state_dir


def _keys(state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    assert main(["keys", "show", "--state-dir", str(state)]) == 0
    path = tmp_path / "keys.json"
    path.write_text(capsys.readouterr().out)
    return path


def test_export_and_verify_exit_codes(
    state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = _keys(state, tmp_path, capsys)
    export = tmp_path / "export.jsonl"
    assert main(["log", "export", "--state-dir", str(state), "--out", str(export)]) == 0
    assert "exported 6 records" in capsys.readouterr().out
    assert main(["log", "verify", "--export", str(export), "--keys", str(keys)]) == 0
    assert "OK: 6 records" in capsys.readouterr().out
    # A kept checkpoint (the last line of an earlier export) works with --since-checkpoint.
    kept = tmp_path / "kept.json"
    kept.write_text(export.read_text().splitlines()[-1])
    argv = [
        "log",
        "verify",
        "--export",
        str(export),
        "--keys",
        str(keys),
        "--since-checkpoint",
        str(kept),
        "--format",
        "json",
    ]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["consistent_with"] == 6
    # Tamper with record 2: exit 1, naming it.
    lines = export.read_text().splitlines()
    lines[2] = lines[2].replace('"caller":"ci"', '"caller":"mallory"')
    export.write_text("\n".join(lines) + "\n")
    assert main(["log", "verify", "--export", str(export), "--keys", str(keys)]) == 1
    assert "FAILED: record 2: record_hash does not match" in capsys.readouterr().err
    assert main([*argv[:6], "--format", "json"]) == 1
    assert json.loads(capsys.readouterr().out)["first_bad_index"] == 2
    # Usage problems: exit 2.
    assert main(["log", "verify", "--export", str(tmp_path / "nope"), "--keys", str(keys)]) == 2
    assert main(["log", "verify", "--export", str(export), "--keys", str(export)]) == 2
    assert main(["log", "verify", "--export", str(export)]) == 2


def test_verify_with_a_bare_pem_key(
    state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = json.loads(_keys(state, tmp_path, capsys).read_text())
    pem = tmp_path / "key.pem"
    pem.write_text(keys["keys"][0]["public_key_pem"])
    export = tmp_path / "e.jsonl"
    assert main(["log", "export", "--state-dir", str(state), "--out", str(export)]) == 0
    assert main(["log", "verify", "--export", str(export), "--keys", str(pem)]) == 0


def test_query_text_and_json(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["log", "query", "--state-dir", str(state), "--limit", "4", "--service", "payments"]
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out[:4]] == ["5", "4", "3", "2"]
    cursor = out[-1].split("--cursor ")[1]
    assert main([*argv, "--cursor", cursor, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["log"]["index"] for r in doc["records"]] == [1, 0] and doc["next_cursor"] is None
    assert main(["log", "query", "--state-dir", str(state), "--since", "bad"]) == 2


def test_missing_key_is_a_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["log", "export", "--state-dir", str(tmp_path / "none"), "--out", str(tmp_path / "x.jsonl")]
    )
    assert code == 2 and "keys generate" in capsys.readouterr().err
    assert not (tmp_path / "x.jsonl").exists()


_PATHS: list[str] = []


class _AuditorApi(BaseHTTPRequestHandler):
    """The two auditor routes ``log export --server`` reads, served from a real log."""

    log: DecisionLog
    paths: list[str]

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._send(401, {"code": "unauthorized", "message": "token required", "errors": []})
            return
        url = urllib.parse.urlsplit(self.path)
        self.paths.append(url.path)
        params = dict(urllib.parse.parse_qsl(url.query))
        if url.path == "/v1/log/checkpoint":
            self._send(200, self.log.checkpoint().to_json())
        elif url.path == "/v1/decisions":
            page = self.log.query_page(limit=int(params["limit"]), cursor=params.get("cursor"))
            self._send(200, page.to_json())
        else:
            self._send(404, {"code": "not_found", "message": url.path, "errors": []})

    def _send(self, status: int, doc: object) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server(state: Path) -> Iterator[str]:
    log = open_decision_log(state, create_key=False)
    fill(log, 7, start=10)  # 13 records: several pages of 5
    handler = type("Handler", (_AuditorApi,), {"log": log, "paths": _PATHS})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    log.close()


def test_export_from_server_then_verify(
    server: str,
    state: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys = _keys(state, tmp_path, capsys)
    export = tmp_path / "server.jsonl"
    monkeypatch.setattr("engine.log.export.PAGE_SIZE", 5)
    assert main(["log", "export", "--server", server, "--out", str(export)]) == 1
    assert "HTTP 401" in capsys.readouterr().err and not export.exists()
    monkeypatch.setenv("RELEASEGATE_TOKEN", TOKEN)
    assert main(["log", "export", "--server", server, "--out", str(export)]) == 0
    assert "exported 13 records" in capsys.readouterr().out
    assert _PATHS[-4:] == ["/v1/log/checkpoint"] + ["/v1/decisions"] * 3  # pages of 5
    assert main(["log", "verify", "--export", str(export), "--keys", str(keys)]) == 0


def test_kept_checkpoint_file_forms(
    state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = _keys(state, tmp_path, capsys)
    export = tmp_path / "export.jsonl"
    assert main(["log", "export", "--state-dir", str(state), "--out", str(export)]) == 0
    last = json.loads(export.read_text().splitlines()[-1])
    forms = {
        "pretty.json": json.dumps(last, indent=2),
        "note.txt": last["note"],
        "earlier-export.jsonl": export.read_text(),
    }
    for name, content in forms.items():
        kept = tmp_path / name
        kept.write_text(content)
        argv = [
            "log",
            "verify",
            "--export",
            str(export),
            "--keys",
            str(keys),
            "--since-checkpoint",
            str(kept),
        ]
        assert main(argv) == 0, name
    (tmp_path / "bad.json").write_text("{not json")
    argv[-1] = str(tmp_path / "bad.json")
    assert main(argv) == 2
