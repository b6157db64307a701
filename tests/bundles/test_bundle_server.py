"""``GET /bundles/{name}``: strong ETag, ``If-None-Match`` -> 304, 404s.

The router runs in a real uvicorn (the same way the service mounts it).
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from engine.api.bundle_server import BUNDLE_MEDIA_TYPE, bundle_router
from tests.bundles.support import serve_app


@pytest.fixture
def served(tmp_path: Path, signed_bundle: Path) -> Path:
    d = tmp_path / "served"
    d.mkdir()
    shutil.copyfile(signed_bundle, d / "releasegate.tar.gz")
    return d


@pytest.fixture
def client(served: Path) -> Iterator[httpx.Client]:
    app = FastAPI()
    app.include_router(bundle_router(served))
    with serve_app(app) as base_url, httpx.Client(base_url=base_url) as http:
        yield http


def _etag_of(path: Path) -> str:
    return f'"sha256-{hashlib.sha256(path.read_bytes()).hexdigest()}"'


def test_serves_the_bundle_with_a_strong_etag(client: httpx.Client, served: Path) -> None:
    r = client.get("/bundles/releasegate.tar.gz")
    assert r.status_code == 200
    assert r.content == (served / "releasegate.tar.gz").read_bytes()
    assert r.headers["content-type"] == BUNDLE_MEDIA_TYPE
    assert r.headers["etag"] == _etag_of(served / "releasegate.tar.gz")
    assert not r.headers["etag"].startswith("W/")


def test_the_stem_names_the_same_bundle(client: httpx.Client) -> None:
    assert (
        client.get("/bundles/releasegate").content
        == client.get("/bundles/releasegate.tar.gz").content
    )


@pytest.mark.parametrize(
    "header",
    ["{etag}", "*", "W/{etag}", '"other", {etag}'],
    ids=["exact", "star", "weak-form", "list"],
)
def test_if_none_match_gives_304(client: httpx.Client, served: Path, header: str) -> None:
    etag = _etag_of(served / "releasegate.tar.gz")
    r = client.get(
        "/bundles/releasegate.tar.gz", headers={"If-None-Match": header.format(etag=etag)}
    )
    assert r.status_code == 304
    assert r.content == b""
    assert r.headers["etag"] == etag


def test_a_changed_bundle_gets_a_new_etag_and_full_body(
    client: httpx.Client, served: Path, tmp_path: Path
) -> None:
    path = served / "releasegate.tar.gz"
    old = client.get("/bundles/releasegate.tar.gz").headers["etag"]
    new_bytes = path.read_bytes() + b"\0"  # any change of bytes
    tmp = tmp_path / "next.tar.gz"
    tmp.write_bytes(new_bytes)
    tmp.replace(path)  # atomic swap, as `bundle build` does

    r = client.get("/bundles/releasegate.tar.gz", headers={"If-None-Match": old})
    assert r.status_code == 200
    assert r.content == new_bytes
    assert r.headers["etag"] != old


@pytest.mark.parametrize("name", ["missing.tar.gz", "..tar.gz", ".hidden", "-x"])
def test_unknown_or_unsafe_names_are_404(client: httpx.Client, served: Path, name: str) -> None:
    (served / ".hidden").write_bytes(b"secret")
    r = client.get(f"/bundles/{name}")
    assert r.status_code == 404
    assert r.json()["code"] == "bundle_not_found"


@pytest.mark.parametrize("path", ["/bundles/..%2F..%2Fetc%2Fpasswd", "/bundles/../pyproject.toml"])
def test_path_traversal_never_reaches_a_file(client: httpx.Client, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 404
    assert b"[project]" not in r.content and b"root:" not in r.content
