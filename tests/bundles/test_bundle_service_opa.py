"""A real OPA pulls the signed bundle from releasegate's bundle router, verifies it,
re-polls with ``If-None-Match`` (304), refuses a tampered bundle (keeping the previous
one), and hot-reloads the next good bundle."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from fastapi import FastAPI, Request, Response

from engine.api.bundle_server import bundle_router
from engine.bundles import SigningAlg, build_bundle
from tests.bundles.support import (
    ALG,
    KEY_ID,
    POLICY_SRC,
    START_DEADLINE_S,
    KeyPair,
    OpaServer,
    flip_rego_byte,
    opa_server,
    rewrite,
    serve_app,
    wait_healthy,
)

pytestmark = pytest.mark.opa

RESOURCE = "bundles/releasegate.tar.gz"


@dataclass(frozen=True)
class Seen:
    status: int
    etag: str
    if_none_match: str | None


class RequestLog:
    """What the bundle server answered, in order (written by uvicorn's thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: list[Seen] = []

    def add(self, seen: Seen) -> None:
        with self._lock:
            self._seen.append(seen)

    def snapshot(self) -> list[Seen]:
        with self._lock:
            return list(self._seen)

    def wait_for(self, what: str, pred: Callable[[list[Seen]], bool]) -> list[Seen]:
        deadline = time.monotonic() + START_DEADLINE_S
        while time.monotonic() < deadline:
            seen = self.snapshot()
            if pred(seen):
                return seen
            time.sleep(0.05)
        pytest.fail(f"bundle server never saw {what}: {self.snapshot()}")


def _app(bundle_dir: Path, log: RequestLog) -> FastAPI:
    app = FastAPI()
    app.include_router(bundle_router(bundle_dir), prefix="")

    @app.middleware("http")
    async def record(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        if request.url.path == f"/{RESOURCE}":
            log.add(
                Seen(
                    response.status_code,
                    response.headers.get("etag", ""),
                    request.headers.get("if-none-match"),
                )
            )
        return response

    return app


def _revision(opa: OpaServer) -> str | None:
    r = opa.client.get("/v1/data/system/bundles/releasegate/manifest/revision")
    return r.json().get("result") if r.status_code == 200 else None


def _allow(opa: OpaServer) -> object:
    body = {"input": {"environment": "prod", "score": 2}}
    return opa.client.post("/v1/data/releasegate/example/allow", json=body).json().get("result")


def _publish(src: Path, served: Path) -> None:
    tmp = served / ".incoming"
    shutil.copyfile(src, tmp)
    tmp.replace(served / "releasegate.tar.gz")  # atomic, as `bundle build` writes


def test_opa_pulls_verifies_caches_refuses_and_reloads(
    opa_bin: Path, keys: dict[SigningAlg, KeyPair], tmp_path: Path
) -> None:
    pair = keys[ALG]
    served = tmp_path / "served"
    served.mkdir()
    builds = tmp_path / "builds"
    r1 = build_bundle(
        POLICY_SRC, builds / "r1.tar.gz", signing_key=pair.private, revision="r1", key_id=KEY_ID
    )
    r2 = build_bundle(
        POLICY_SRC, builds / "r2.tar.gz", signing_key=pair.private, revision="r2", key_id=KEY_ID
    )
    tampered = rewrite(builds / "r2.tar.gz", builds / "r2-tampered.tar.gz", flip_rego_byte)
    _publish(builds / "r1.tar.gz", served)
    log = RequestLog()

    with serve_app(_app(served, log)) as base_url:
        config = {
            "services": {"releasegate": {"url": base_url}},
            "bundles": {
                "releasegate": {
                    "service": "releasegate",
                    "resource": RESOURCE,
                    "polling": {"min_delay_seconds": 1, "max_delay_seconds": 1},
                    "signing": {"keyid": KEY_ID},
                }
            },
            "keys": {KEY_ID: {"key": pair.public.read_text(), "algorithm": pair.alg.value}},
        }
        (tmp_path / "opa.yaml").write_text(yaml.safe_dump(config))
        with opa_server(opa_bin, ["-c", str(tmp_path / "opa.yaml")], tmp_path) as opa:
            # 1. OPA downloads r1, verifies the signature and activates it.
            assert wait_healthy(opa), opa.logs()
            assert _revision(opa) == r1.revision == "r1"
            assert _allow(opa) is True

            # 2. The next poll sends the ETag back and gets 304 Not Modified.
            seen = log.wait_for("a 304", lambda s: any(x.status == 304 for x in s))
            assert seen[0].status == 200
            first_304 = next(x for x in seen if x.status == 304)
            assert first_304.if_none_match == seen[0].etag

            # 3. A tampered bundle is downloaded, refused, and r1 keeps serving.
            _publish(tampered, served)
            seen = log.wait_for(
                "the tampered bundle served",
                lambda s: s[-1].status == 200 and s[-1].etag != seen[0].etag,
            )
            n = len(seen)
            log.wait_for("a poll after the refusal", lambda s: len(s) > n)
            assert _revision(opa) == "r1"
            assert _allow(opa) is True
            assert "digest mismatch" in opa.logs()

            # 4. The next good bundle is hot-reloaded.
            _publish(builds / "r2.tar.gz", served)
            deadline = time.monotonic() + START_DEADLINE_S
            while _revision(opa) != r2.revision and time.monotonic() < deadline:
                time.sleep(0.05)
            assert _revision(opa) == "r2"
            assert _allow(opa) is True
