"""Verify a signed bundle offline exactly as ``opa run --verification-key`` does, and stricter.

OPA's checks (``bundle/verify.go``, ``bundle/bundle.go``), all reproduced here:
exactly one JWS in ``.signatures.json``; it verifies with the configured key; its ``scope``
equals the configured scope; every file in the tarball is listed in the payload with a
matching digest; every listed file is present. Stricter than OPA: the token's ``alg`` must
be the key's algorithm, its key id must match when one is given, a custom signing
``plugin`` is refused, weak digests (MD5, SHA-1) are refused, and links, duplicate names
and stray ``*signatures.json`` files fail the bundle instead of being skipped.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from engine.bundles.archive import read_bundle_bytes, read_entries
from engine.bundles.build import (
    DEFAULT_ROOTS,
    MANIFEST,
    SIGNATURES,
    collect_sources,
    content_revision,
    manifest_bytes,
)
from engine.bundles.hashing import HASH_ALGORITHMS, file_digest, parse_json
from engine.bundles.keys import load_verification_key
from engine.bundles.models import BundleFile, BundleInfo
from engine.bundles.sign import b64url_decode, verify_jws
from engine.errors import BundleError

__all__ = ["bundle_is_fresh", "read_bundle_info", "verify_bundle"]


def _manifest(entries: dict[str, bytes]) -> tuple[str, tuple[str, ...]]:
    raw = entries.get(MANIFEST)
    if raw is None:
        return "", ("",)
    manifest = parse_json(raw, name=MANIFEST)
    if not isinstance(manifest, dict):
        raise BundleError(f"{MANIFEST}: not a JSON object")
    revision = manifest.get("revision", "")
    roots = manifest.get("roots", [""])
    if not isinstance(revision, str) or not isinstance(roots, list):
        raise BundleError(f"{MANIFEST}: revision must be a string and roots a list")
    if not all(isinstance(r, str) for r in roots):
        raise BundleError(f"{MANIFEST}: roots must be strings")
    return revision, tuple(str(r) for r in roots)


def _signature_files(entries: dict[str, bytes]) -> list[str]:
    # NOTE: OPA treats ANY file whose name ends in "signatures.json" as the signatures file.
    return sorted(name for name in entries if name.endswith("signatures.json"))


def _token(entries: dict[str, bytes]) -> str | None:
    names = _signature_files(entries)
    if not names:
        return None
    if names != [SIGNATURES]:
        stray = next(n for n in names if n != SIGNATURES) if SIGNATURES in names else names[0]
        raise BundleError(f"{stray}: unexpected signatures file (only /{SIGNATURES} is allowed)")
    doc = parse_json(entries[SIGNATURES], name=SIGNATURES)
    if not isinstance(doc, dict) or not isinstance(doc.get("signatures"), list):
        raise BundleError(f"{SIGNATURES}: expected an object with a 'signatures' list")
    if doc.get("plugin") not in (None, "", "_default"):  # "_default" is what opa build writes
        raise BundleError(f"{SIGNATURES}: custom signing plugin {doc['plugin']!r} is not supported")
    tokens = doc["signatures"]
    if len(tokens) != 1 or not isinstance(tokens[0], str):
        raise BundleError(f"{SIGNATURES}: expected exactly one JWT, found {len(tokens)}")
    return str(tokens[0])


def _payload_files(payload: dict[str, Any]) -> dict[str, BundleFile]:
    listed = payload.get("files")
    if not isinstance(listed, list):
        raise BundleError(f"{SIGNATURES}: payload has no 'files' list")
    files: dict[str, BundleFile] = {}
    for item in listed:
        if not isinstance(item, dict) or not all(
            isinstance(item.get(k), str) for k in ("name", "hash", "algorithm")
        ):
            raise BundleError(f"{SIGNATURES}: each file needs string name, hash and algorithm")
        name = item["name"].removeprefix("/")
        if name in files:
            raise BundleError(f"{name}: listed more than once in the signature")
        if item["algorithm"] not in HASH_ALGORITHMS:
            raise BundleError(f"{name}: unsupported hash algorithm {item['algorithm']!r}")
        files[name] = BundleFile(name, item["hash"].lower(), item["algorithm"])
    return files


def _key_id(header: dict[str, Any], payload: dict[str, Any]) -> str | None:
    kid = header.get("kid") or payload.get("keyid")
    return str(kid) if isinstance(kid, str) and kid else None


def _digest(raw: bytes) -> str:
    return f"sha256:{hashlib.sha256(raw).hexdigest()}"


def _local_files(entries: dict[str, bytes]) -> tuple[BundleFile, ...]:
    return tuple(
        BundleFile(name, file_digest(name, entries[name]))
        for name in sorted(entries)
        if name != SIGNATURES
    )


def verify_bundle(
    path: Path,
    *,
    public_key: Path,
    key_id: str | None = None,
    scope: str | None = None,
) -> BundleInfo:
    """Verify the bundle at ``path`` with ``public_key``; returns its info, or raises.

    Raises ``BundleError`` naming the first problem (the first bad file in name order),
    ``InputError`` when the bundle or key file cannot be read.
    """
    key = load_verification_key(public_key)
    raw = read_bundle_bytes(path)
    # 1. Read the archive strictly (regular files only, unique names, bounded size).
    entries = read_entries(raw)
    # 2. Exactly one signatures file holding exactly one JWT.
    token = _token(entries)
    if token is None:
        raise BundleError(f"bundle is unsigned: /{SIGNATURES} is missing")
    # 3. The JWS verifies with the key, and its alg is the key's.
    header, payload_raw = verify_jws(token, key=key)
    try:
        payload = json.loads(payload_raw)
    except ValueError as exc:
        raise BundleError(f"{SIGNATURES}: JWS payload is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise BundleError(f"{SIGNATURES}: JWS payload is not a JSON object")
    # 4. The key id, when the caller names one, is the one the token was made for.
    signed_kid = _key_id(header, payload)
    if key_id is not None and signed_kid != key_id:
        raise BundleError(f"{SIGNATURES}: key id {signed_kid!r} does not match {key_id!r}")
    # 5. The scope matches (OPA compares the payload's scope with the configured one).
    if (payload.get("scope") or "") != (scope or ""):
        raise BundleError(f"{SIGNATURES}: scope {payload.get('scope')!r} does not match")
    # 6. Every file in the tarball is listed, with a matching digest (no unsigned extras).
    listed = _payload_files(payload)
    for name in sorted(entries):
        if name == SIGNATURES:
            continue
        want = listed.pop(name, None)
        if want is None:
            raise BundleError(f"{name}: file not included in the bundle signature")
        got = file_digest(name, entries[name], algorithm=want.algorithm)
        if got != want.hash:
            raise BundleError(f"{name}: digest mismatch (signed {want.hash}, got {got})")
    # 7. No listed file is missing from the tarball.
    if listed:
        raise BundleError(f"{min(listed)}: listed in the bundle signature but missing")
    revision, roots = _manifest(entries)
    return BundleInfo(
        revision=revision,
        digest=_digest(raw),
        roots=roots,
        files=_local_files(entries),
        signed=True,
        key_id=signed_kid,
    )


def read_bundle_info(path: Path) -> BundleInfo:
    """Revision, digest, roots and file digests of a bundle, WITHOUT verifying it."""
    raw = read_bundle_bytes(path)
    entries = read_entries(raw)
    token = _token(entries)
    kid: str | None = None
    if token is not None:
        parts = token.split(".")
        if len(parts) == 3:
            try:
                header = json.loads(b64url_decode(parts[0], what="JWS header"))
                payload = json.loads(b64url_decode(parts[1], what="JWS payload"))
            except ValueError as exc:
                raise BundleError(f"{SIGNATURES}: token is not JSON: {exc}") from exc
            if isinstance(header, dict) and isinstance(payload, dict):
                kid = _key_id(header, payload)
    revision, roots = _manifest(entries)
    return BundleInfo(
        revision=revision,
        digest=_digest(raw),
        roots=roots,
        files=_local_files(entries),
        signed=token is not None,
        key_id=kid,
    )


def bundle_is_fresh(
    bundle: Path,
    src: Path,
    *,
    public_key: Path | None = None,
    key_id: str | None = None,
) -> tuple[bool, str]:
    """Whether ``bundle`` holds exactly what building ``src`` now would (no key needed).

    Compares the committed bundle's files and revision with a fresh unsigned build of
    ``src``. With ``public_key`` it also verifies the signature. Returns ``(ok, message)``;
    the message names the first differing file.
    """
    # 1. Optionally verify the signature (a fresh but unverifiable bundle is not good).
    try:
        info = (
            verify_bundle(bundle, public_key=public_key, key_id=key_id)
            if public_key is not None
            else read_bundle_info(bundle)
        )
    except BundleError as exc:
        return False, f"{bundle}: {exc}"
    # 2. Build the expected file set from the sources, with the content revision.
    expected = collect_sources(src, roots=DEFAULT_ROOTS)
    revision = content_revision(expected, roots=DEFAULT_ROOTS)
    expected[MANIFEST] = manifest_bytes(revision, roots=DEFAULT_ROOTS)
    want = {f.name: f.hash for f in (BundleFile(n, file_digest(n, b)) for n, b in expected.items())}
    have = {f.name: f.hash for f in info.files}
    # 3. Compare file by file, in name order, so the message names the first difference.
    for name in sorted(set(want) | set(have)):
        if name == MANIFEST:
            continue
        if name not in have:
            return False, f"stale: {name} is in {src} but not in {bundle}"
        if name not in want:
            return False, f"stale: {name} is in {bundle} but not in {src}"
        if want[name] != have[name]:
            return False, f"stale: {name} differs between {src} and {bundle}"
    if info.revision != revision:
        return False, f"stale: revision {info.revision} is not the content revision {revision}"
    if have.get(MANIFEST) != want[MANIFEST]:
        return False, f"stale: {MANIFEST} differs from a fresh build"
    return True, f"fresh: {bundle} matches {src} (revision {revision})"
