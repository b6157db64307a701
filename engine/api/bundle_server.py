"""Serve signed policy bundles to OPA fleets (OPA's bundle service API).

``GET /bundles/{name}`` returns the gzip tarball ``bundle_dir/name`` with a strong
``ETag`` (the quoted SHA-256 of the bytes). OPA sends the last ETag it activated in
``If-None-Match``; when it still matches, the answer is ``304 Not Modified`` with no body,
so a fleet polling every few seconds costs a stat and a header each.

The router serves bytes; it does not vouch for them. Every OPA verifies the bundle's
signature itself (``bundles.<name>.signing.keyid`` + ``keys`` in its config), so a bad
bundle dropped into ``bundle_dir`` is refused by each OPA, which keeps its previous one.

Mount it with ``app.include_router(bundle_router(settings.bundle_dir))``; it carries no
auth of its own, so the service decides whether bundles are public or need a token.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse, Response

__all__ = ["BUNDLE_MEDIA_TYPE", "bundle_router"]

BUNDLE_MEDIA_TYPE = "application/gzip"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class _Cached:
    stamp: tuple[int, int, int, int]  # (device, inode, size, mtime_ns)
    etag: str
    body: bytes


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "message": message, "errors": []}, status_code=status)


def _etag_matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 §13.1.2: ``*`` or any listed tag equal under weak comparison."""
    value = if_none_match.strip()
    if value == "*":
        return True
    opaque = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == opaque for tag in value.split(","))


class _BundleFiles:
    """Reads bundle files, re-hashing only when a file's (inode, size, mtime) changes."""

    def __init__(self, bundle_dir: Path) -> None:
        self._dir = bundle_dir
        self._cache: dict[str, _Cached] = {}
        self._lock = threading.Lock()

    def resolve(self, name: str) -> Path | None:
        if not _NAME.match(name):
            return None
        candidates = [name] if name.endswith(".tar.gz") else [name, f"{name}.tar.gz"]
        for candidate in candidates:
            path = self._dir / candidate
            if path.is_file():
                return path
        return None

    def load(self, name: str, path: Path) -> _Cached:
        st = path.stat()
        stamp = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        with self._lock:
            cached = self._cache.get(name)
        if cached is not None and cached.stamp == stamp:
            return cached
        # NOTE: hash exactly the bytes we serve; a file replaced between stat() and read()
        # (atomic rename by `bundle build`) only costs one extra re-hash on the next poll.
        body = path.read_bytes()
        fresh = _Cached(stamp, f'"sha256-{hashlib.sha256(body).hexdigest()}"', body)
        with self._lock:
            self._cache[name] = fresh
        return fresh


def bundle_router(bundle_dir: Path) -> APIRouter:
    """A router serving ``GET /bundles/{name}`` from the ``*.tar.gz`` files in ``bundle_dir``.

    ``name`` may be the file name (``releasegate.tar.gz``) or its stem (``releasegate``).
    """
    files = _BundleFiles(bundle_dir)
    router = APIRouter(tags=["bundles"])

    @router.get(
        "/bundles/{name}",
        response_class=Response,
        responses={
            200: {"content": {BUNDLE_MEDIA_TYPE: {}}, "description": "the bundle tarball"},
            304: {"description": "the bundle has not changed (If-None-Match matched)"},
            404: {"description": "no such bundle"},
        },
    )
    def get_bundle(
        name: str,
        if_none_match: Annotated[str | None, Header()] = None,
    ) -> Response:
        """Serve one bundle with a strong ETag; answer 304 when ``If-None-Match`` matches."""
        path = files.resolve(name)
        if path is None:
            return _error(404, "bundle_not_found", f"no bundle named {name!r}")
        try:
            bundle = files.load(name, path)
        except OSError as exc:
            return _error(404, "bundle_not_found", f"bundle {name!r} unreadable: {exc.strerror}")
        headers = {"ETag": bundle.etag, "Cache-Control": "no-cache"}
        if if_none_match is not None and _etag_matches(if_none_match, bundle.etag):
            return Response(status_code=304, headers=headers)
        return Response(content=bundle.body, media_type=BUNDLE_MEDIA_TYPE, headers=headers)

    return router
