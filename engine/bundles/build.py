"""Build a signed OPA bundle from a policy directory.

What goes in (paths relative to ``src``, kept as they are):

* every ``*.rego`` file except ``*_test.rego`` (raw bytes; its package must sit under a root),
* every ``data.json`` file (its directory is its data path, which must sit under a root),
* a generated ``.manifest`` (``revision``, ``roots``, ``rego_version: 1``),
* ``.signatures.json`` with one JWS over the digests of all of the above.

Everything else (schemas, READMEs, test fixtures other than ``data.json``) stays out.
The default revision is ``sha256:`` of the content, so the same policies give the same
revision on every machine, and :func:`engine.bundles.verify.bundle_is_fresh` can compare a
committed bundle with the working tree without the private key.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from engine.bundles.archive import write_tarball
from engine.bundles.hashing import file_digest, parse_json
from engine.bundles.keys import load_signing_key
from engine.bundles.models import BundleFile, BundleInfo
from engine.bundles.sign import sign_jws
from engine.errors import BundleError, InputError

__all__ = [
    "DEFAULT_KEY_ID",
    "DEFAULT_ROOTS",
    "MANIFEST",
    "SIGNATURES",
    "build_bundle",
    "collect_sources",
    "content_revision",
    "manifest_bytes",
    "signature_payload",
]

DEFAULT_ROOTS: tuple[str, ...] = ("releasegate",)
DEFAULT_KEY_ID = "releasegate"
MANIFEST = ".manifest"
SIGNATURES = ".signatures.json"
REGO_VERSION = 1

_PACKAGE = re.compile(rb"^[ \t]*package\s+([A-Za-z_][A-Za-z0-9_.]*)", re.MULTILINE)
_YAML_DATA = {"data.yaml", "data.yml"}


def _under_roots(path: Sequence[str], roots: Sequence[str]) -> bool:
    return any(tuple(path[: len(r.split("/"))]) == tuple(r.split("/")) for r in roots)


def _check_rego(name: str, raw: bytes, roots: Sequence[str]) -> None:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BundleError(f"{name}: not UTF-8: {exc}") from exc
    match = _PACKAGE.search(raw)
    if match is None:
        raise BundleError(f"{name}: no package declaration")
    package = match.group(1).decode().rstrip(".")
    if not _under_roots(package.split("."), roots):
        raise BundleError(f"{name}: package {package} is outside roots {list(roots)}")


def _check_data(name: str, raw: bytes, roots: Sequence[str]) -> None:
    value = parse_json(raw, name=name)
    directory = name.split("/")[:-1]
    if directory:
        if not _under_roots(directory, roots):
            raise BundleError(
                f"{name}: data path /{'/'.join(directory)} is outside roots {list(roots)}"
            )
        return
    if not isinstance(value, dict) or not all(_under_roots([k], roots) for k in value):
        raise BundleError(f"{name}: top-level keys must be bundle roots {list(roots)}")


def collect_sources(src: Path, *, roots: Sequence[str] = DEFAULT_ROOTS) -> dict[str, bytes]:
    """The bundle's policy and data files found under ``src`` (name -> bytes), checked.

    Raises ``InputError`` if ``src`` is not a directory, ``BundleError`` for a file that
    would make OPA refuse the bundle (package or data outside the roots, bad JSON, YAML
    data, symlinks) or if there is no policy at all.
    """
    if not src.is_dir():
        raise InputError(f"policy directory {src} does not exist")
    files: dict[str, bytes] = {}
    for dirpath, dirnames, filenames in os.walk(src, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for filename in sorted(filenames):
            path = Path(dirpath) / filename
            name = path.relative_to(src).as_posix()
            wanted = filename == "data.json" or (
                filename.endswith(".rego") and not filename.endswith("_test.rego")
            )
            if filename in _YAML_DATA:
                raise BundleError(f"{name}: YAML data files are not supported; use data.json")
            if not wanted:
                continue
            if path.is_symlink():
                raise BundleError(f"{name}: symlinks are not allowed in a bundle source")
            raw = path.read_bytes()
            if filename == "data.json":
                _check_data(name, raw, roots)
            else:
                _check_rego(name, raw, roots)
            files[name] = raw
    if not any(name.endswith(".rego") for name in files):
        raise BundleError(f"{src}: no policy (.rego) files to bundle")
    return files


def content_revision(files: Mapping[str, bytes], *, roots: Sequence[str] = DEFAULT_ROOTS) -> str:
    """``sha256:`` over the roots and each file's name and OPA digest, in name order."""
    h = hashlib.sha256()
    h.update(f"roots={','.join(roots)};rego_version={REGO_VERSION}\n".encode())
    for name in sorted(files):
        h.update(f"{name}\0{file_digest(name, files[name])}\n".encode())
    return f"sha256:{h.hexdigest()}"


def manifest_bytes(revision: str, *, roots: Sequence[str] = DEFAULT_ROOTS) -> bytes:
    """The ``.manifest`` file for ``revision``."""
    manifest = {"revision": revision, "roots": list(roots), "rego_version": REGO_VERSION}
    return (json.dumps(manifest, sort_keys=True, separators=(",", ":")) + "\n").encode()


def _digests(files: Mapping[str, bytes]) -> tuple[BundleFile, ...]:
    return tuple(BundleFile(name, file_digest(name, files[name])) for name in sorted(files))


def signature_payload(
    files: Sequence[BundleFile], *, key_id: str, scope: str | None = None
) -> dict[str, object]:
    """The JWT claims OPA expects: ``files`` digests, the (deprecated) ``keyid``, ``scope``."""
    payload: dict[str, object] = {"files": [f.as_dict() for f in files], "keyid": key_id}
    if scope:
        payload["scope"] = scope
    return payload


def build_bundle(
    src: Path,
    out: Path,
    *,
    signing_key: Path,
    revision: str | None = None,
    key_id: str = DEFAULT_KEY_ID,
    scope: str | None = None,
    roots: Sequence[str] = DEFAULT_ROOTS,
) -> BundleInfo:
    """Build ``src`` into a signed bundle at ``out``; returns its revision, digest and files."""
    # 1. Load the key first: a bad key should fail before any output is written.
    key = load_signing_key(signing_key)
    if not key_id:
        raise InputError("key id must not be empty (OPA needs it to pick the key)")
    # 2. Collect and check the sources; derive the revision from them unless given.
    files = collect_sources(src, roots=roots)
    rev = revision if revision is not None else content_revision(files, roots=roots)
    files[MANIFEST] = manifest_bytes(rev, roots=roots)
    # 3. Sign the digests of every file (the manifest included), then write the tarball.
    digests = _digests(files)
    token = sign_jws(signature_payload(digests, key_id=key_id, scope=scope), key=key, key_id=key_id)
    files[SIGNATURES] = (json.dumps({"signatures": [token]}, indent=1) + "\n").encode()
    raw = write_tarball(files, out)
    return BundleInfo(
        revision=rev,
        digest=f"sha256:{hashlib.sha256(raw).hexdigest()}",
        roots=tuple(roots),
        files=digests,
        signed=True,
        key_id=key_id,
    )
