"""File digests exactly as OPA computes them for bundle signatures.

OPA (``bundle/hash.go``, ``bundle/verify.go``) hashes two kinds of file differently:

* *structured* files (base name ``data.json``, ``data.yaml``, ``.manifest``,
  ``signatures.json``) are parsed, then walked: an object hashes as ``{`` + each key in
  sorted order as a JSON string + ``:`` + its value + ``,`` between members + ``}``; an
  array as ``[`` + items + ``,`` between + ``]``; a scalar as its Go ``encoding/json``
  encoding with HTML escaping off. Numbers keep their literal text (OPA decodes with
  ``UseNumber``), so ``1.50`` and ``1.5`` hash differently, as they do in OPA.
* every other file (``.rego`` and anything else) hashes as its raw bytes.

The result is independent of whitespace and key order in JSON, which is why a JSON file
can be reformatted without invalidating a signature but a Rego file cannot.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections.abc import Callable
from typing import TYPE_CHECKING

from engine.errors import BundleError

if TYPE_CHECKING:
    from hashlib import _Hash

__all__ = [
    "HASH_ALGORITHMS",
    "STRUCTURED_NAMES",
    "file_digest",
    "is_structured",
    "parse_json",
]

STRUCTURED_NAMES = frozenset({"data.json", "data.yaml", "data.yml", ".manifest", "signatures.json"})
"""Base names OPA hashes in canonical form (``IsStructuredDoc``)."""

HASH_ALGORITHMS: dict[str, Callable[[], _Hash]] = {
    "SHA-256": hashlib.sha256,
    "SHA-384": hashlib.sha384,
    "SHA-512": hashlib.sha512,
}
"""Digest algorithms accepted in a signature payload. OPA also accepts MD5, SHA-1 and
SHA-224; releasegate refuses them (fail closed on weak digests)."""

_UTF8_BOM = b"\xef\xbb\xbf"


class _Number(str):
    """A JSON number kept as its literal text, like Go's ``json.Number``."""

    __slots__ = ()


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(raw: bytes, *, name: str) -> object:
    """Parse JSON the way OPA does for hashing: UTF-8, optional BOM, numbers kept verbatim."""
    if raw.startswith(_UTF8_BOM):
        raw = raw[len(_UTF8_BOM) :]
    try:
        text = raw.decode("utf-8")
        return json.loads(
            text,
            parse_int=_Number,
            parse_float=_Number,
            parse_constant=_reject_constant,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise BundleError(f"{name}: not valid JSON: {exc}") from exc


def _encode_string(value: str) -> bytes:
    # NOTE: Go's encoder (SetEscapeHTML(false)) matches Python's ensure_ascii=False output
    # for every character except U+2028 and U+2029, which Go always escapes.
    text = json.dumps(value, ensure_ascii=False)
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return text.encode("utf-8")


def _walk(value: object, h: _Hash) -> None:
    if isinstance(value, dict):
        h.update(b"{")
        for i, key in enumerate(sorted(value)):
            if i:
                h.update(b",")
            h.update(_encode_string(key))
            h.update(b":")
            _walk(value[key], h)
        h.update(b"}")
    elif isinstance(value, list):
        h.update(b"[")
        for i, item in enumerate(value):
            if i:
                h.update(b",")
            _walk(item, h)
        h.update(b"]")
    elif isinstance(value, _Number):
        h.update(str(value).encode("ascii"))
    elif isinstance(value, str):
        h.update(_encode_string(value))
    elif value is True:
        h.update(b"true")
    elif value is False:
        h.update(b"false")
    elif value is None:
        h.update(b"null")
    else:  # pragma: no cover - parse_json yields only the types above
        raise BundleError(f"cannot hash a value of type {type(value).__name__}")


def is_structured(name: str) -> bool:
    """True if OPA hashes the file named ``name`` in canonical (parsed) form."""
    return posixpath.basename(name) in STRUCTURED_NAMES


def file_digest(name: str, raw: bytes, *, algorithm: str = "SHA-256") -> str:
    """The lowercase hex digest OPA expects for the bundle file ``name`` with bytes ``raw``."""
    factory = HASH_ALGORITHMS.get(algorithm)
    if factory is None:
        raise BundleError(f"{name}: unsupported hash algorithm {algorithm!r}")
    h = factory()
    base = posixpath.basename(name)
    if base in {"data.yaml", "data.yml"}:
        raise BundleError(f"{name}: YAML data files are not supported; use data.json")
    if is_structured(name):
        _walk(parse_json(raw, name=name), h)
    else:
        h.update(raw)
    return h.hexdigest()
