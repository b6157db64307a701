"""Exports from a server, and reading the files an auditor keeps.

An export is JSON Lines: every record (index order), then the signed checkpoint (JSON
form). :func:`export_from_server` builds the same file from the auditor API:
``GET /v1/log/checkpoint`` first, then ``GET /v1/decisions?limit=&cursor=`` pages
(``{"records": [...], "next_cursor": ...}``, newest first) until every record below the
checkpoint's size is in hand.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, TextIO

from engine.errors import InputError, LogError, map_errors
from engine.log.checkpoint import SignedCheckpoint

PAGE_SIZE = 500
TIMEOUT_S = 30.0


def _get_json(url: str, token: str | None) -> Any:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310
            body = response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read(2000).decode("utf-8", "replace")
        raise LogError(f"GET {url}: HTTP {exc.code} {detail}".strip()) from exc
    except (urllib.error.URLError, OSError) as exc:
        raise LogError(f"GET {url}: {exc}") from exc
    with map_errors(LogError, f"GET {url}: response is not JSON"):
        return json.loads(body)


def export_from_server(
    server: str, out: TextIO, *, token: str | None, page_size: int | None = None
) -> SignedCheckpoint:
    """Write an export of the server's log to ``out``; returns its checkpoint."""
    if not server.startswith(("http://", "https://")):
        raise InputError(f"--server: expected an http(s) URL, got {server!r}")
    base = server.rstrip("/")
    checkpoint = SignedCheckpoint.from_json(_get_json(f"{base}/v1/log/checkpoint", token))
    records: dict[int, dict[str, Any]] = {}
    cursor: str | None = None
    while True:
        query = {"limit": str(page_size or PAGE_SIZE)} | ({"cursor": cursor} if cursor else {})
        page = _get_json(f"{base}/v1/decisions?{urllib.parse.urlencode(query)}", token)
        if not isinstance(page, dict) or not isinstance(page.get("records"), list):
            raise LogError("GET /v1/decisions: expected {records, next_cursor}")
        for record in page["records"]:
            index = record.get("log", {}).get("index") if isinstance(record, dict) else None
            if isinstance(index, int) and index < checkpoint.size:
                records[index] = record
        cursor = page.get("next_cursor")
        if not cursor or 0 in records:
            break
    # NOTE: gaps are written as they are; `log verify` then names the first missing index.
    for index in sorted(records):
        out.write(json.dumps(records[index], ensure_ascii=False, separators=(",", ":")) + "\n")
    out.write(json.dumps(checkpoint.to_json(), ensure_ascii=False) + "\n")
    return checkpoint


def read_checkpoint_file(path: Path) -> SignedCheckpoint:
    """A kept checkpoint: the JSON form (as served or pretty-printed), a bare signed note,
    or an earlier export (its last line)."""
    with map_errors(InputError, f"cannot read checkpoint file {path}"):
        text = path.read_text(encoding="utf-8")
    stripped = text.strip()
    if not stripped.startswith("{"):
        return SignedCheckpoint.from_text(text)
    try:
        return SignedCheckpoint.from_json(json.loads(stripped))
    except ValueError:
        return SignedCheckpoint.from_text(stripped.splitlines()[-1])
