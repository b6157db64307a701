"""Fast JSON for what is never signed: request bodies, cache keys and deep copies.

``orjson`` encodes 10-20x faster than the standard library. It is not used for anything a
digest or signature covers: canonical bytes come only from ``rfc8785``
(:mod:`engine.log.canonical`). Where ``orjson`` is lossy or refuses a value (NaN and
Infinity become ``null``; integers beyond 64 bits, lone surrogates and non-string keys
raise), these functions fall back to the standard library, so the result is always right
and only sometimes slower. Request bodies are read by pydantic-core's parser
(:func:`loads`), under the same rule.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

import orjson
import pydantic_core


def loads(data: bytes) -> Any:
    """``json.loads(data)``, read by pydantic-core's parser (jiter) when it can.

    jiter gives the same values (integers of any size exact, floats correctly rounded, the
    last of duplicate keys, ``NaN`` and ``Infinity`` read as the standard library reads them)
    in less time: 44 against 62 µs for the 25 KB benchmark body alone, about 8 % of the
    app's CPU per request in process (docs/benchmarks.md, round 10). It is stricter than
    the standard library, never looser: what it refuses (a UTF-8 byte order mark, UTF-16
    and UTF-32 text, lone surrogate escapes, nesting beyond its limit, and any text that is
    not JSON) goes to ``json.loads``, whose value or exception is then the answer, its error
    positions included.
    (``orjson.loads`` was not taken: it reads integers beyond 64 bits as floats.)
    """
    try:
        return pydantic_core.from_json(data)
    except ValueError:
        return json.loads(data)


def fingerprint(value: Any, *, sort_keys: bool = False) -> str | None:
    """Hex SHA-256 naming a JSON value for a cache: equal values, equal fingerprints.

    Meant for values parsed from JSON (string keys). Not canonical JSON: with
    ``sort_keys=False`` the same object with its keys in another order gets another
    fingerprint (a cache miss, never a wrong hit). None when the value is not JSON at all.
    """
    try:
        data = orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort_keys else 0)
    except (orjson.JSONEncodeError, RecursionError):
        data = None
    # NOTE: orjson writes NaN and Infinity as null. When its text has a null, reading it
    # back must give the value again (a None where the value had NaN does not: NaN equals
    # nothing); otherwise the standard library encodes it (NaN, Infinity), under another
    # prefix, so that NaN and null never share a fingerprint.
    if data is not None and (b"null" not in data or _round_trips(data, value)):
        return "o" + hashlib.sha256(data).hexdigest()
    try:
        text = json.dumps(value, sort_keys=sort_keys, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        return None
    return "j" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _round_trips(data: bytes, value: Any) -> bool:
    try:
        return bool(orjson.loads(data) == value)
    except (orjson.JSONDecodeError, RecursionError):
        return False


def deep_copy(document: dict[str, Any]) -> dict[str, Any]:
    """A deep copy: a JSON round trip when that gives back an equal value, else ``deepcopy``.

    The equality check catches what JSON cannot carry (tuples, non-string keys, NaN, which
    is unequal to itself, big integers orjson would turn into floats).
    """
    try:
        doc = orjson.loads(orjson.dumps(document))
    except (orjson.JSONEncodeError, orjson.JSONDecodeError, RecursionError):
        return copy.deepcopy(document)
    if doc != document:
        return copy.deepcopy(document)
    return doc  # type: ignore[no-any-return]
