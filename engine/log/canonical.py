"""RFC 8785 canonical JSON and the SHA-256 digest strings used throughout the log.

Digests are written ``sha256:<64 lowercase hex>`` on the wire (records, checkpoints' JSON
form); the raw 32 bytes are what the Merkle tree and the signatures consume.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import rfc8785

from engine.errors import InputError, map_errors

ZERO_HASH = "sha256:" + "0" * 64
"""The ``prev_hash`` of the record at index 0 (there is no previous record)."""

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


_SAFE_INT = 2**53 - 1


def _as_jcs_numbers(value: Any) -> Any:
    """Integers beyond 2**53 become the IEEE 754 double they denote, when that is exact.

    RFC 8785 numbers are doubles; the ``rfc8785`` package refuses large Python ints rather
    than round them. An exactly representable one (e.g. a quantized nanosecond timestamp,
    see ``engine.models.common.NS_QUANTUM``) serializes to the same digits as a double.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and abs(value) > _SAFE_INT:
        as_float = float(value)
        if int(as_float) != value:
            raise InputError(f"integer {value} is not exactly representable in RFC 8785 JSON")
        return as_float
    if isinstance(value, dict):
        return {k: _as_jcs_numbers(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_as_jcs_numbers(v) for v in value]
    return value


_MAX_PLAIN_CONTAINERS = 1_000_000
"""Beyond this many objects/arrays (or a cycle) the slow path decides."""

_Fixup = tuple[Any, Any, int]
"""``(container, key, integer)``: a big integer and the digits JCS writes for it."""


def _es6_integer(value: int) -> int | None:
    """The integer whose digits JCS writes for ``value`` (a double), if it has no exponent."""
    as_float = float(value)
    if int(as_float) != value:
        return None  # not representable: the slow path raises
    text = rfc8785.dumps(as_float).decode()
    return int(text) if text.lstrip("-").isdigit() else None


def _plain(value: Any, *, big_ints: bool) -> list[_Fixup] | None:
    """None unless ``json`` can write ``value`` exactly as RFC 8785 would; else the fixups.

    That holds for dicts and lists (exact types) of strings, booleans, null, integers,
    integral floats within 2**53 (listed as fixups: JCS writes ``1.0`` as ``1``) and
    non-integral floats of magnitude in [1e-4, 1e16), whose object keys are strings
    without characters beyond the BMP (so code-point order is UTF-16 order). Integers
    beyond 2**53 are doubles in JCS: with ``big_ints`` each is listed with the integer
    spelling the same digits (e.g. a quantized nanosecond timestamp), without it they are
    not plain. Anything else (other floats, where ES6 number formatting differs from
    ``repr``; tuples, subclasses, other types) takes the slow path.
    """
    if type(value) is not dict and type(value) is not list:
        # A scalar: checked as the only member of a list (a big integer has no container).
        return [] if _plain([value], big_ints=False) == [] else None
    fixups: list[_Fixup] = []
    stack: list[Any] = [value]
    budget = _MAX_PLAIN_CONTAINERS
    while stack:
        node = stack.pop()
        budget -= 1
        if budget < 0:
            return None
        pairs: Any
        if type(node) is dict:
            for k in node:
                if type(k) is not str or not (k.isascii() or max(k) <= "\uffff"):
                    return None
            pairs = node.items()
        else:
            pairs = enumerate(node)
        for k, v in pairs:
            t = type(v)
            if t is str or t is bool or v is None:
                continue
            if t is dict or t is list:
                stack.append(v)
            elif t is int:
                if -_SAFE_INT <= v <= _SAFE_INT:
                    continue
                spelled = _es6_integer(v) if big_ints else None
                if spelled is None:
                    return None
                fixups.append((node, k, spelled))
            elif t is float:
                # In [1e-4, 1e16) repr() and ES6 both write the shortest round-trip digits
                # in fixed notation; they differ only on integral values ("1.0" vs "1"),
                # which below 2**53 ES6 writes as the integer's exact digits.
                if v.is_integer() and abs(v) <= _SAFE_INT:
                    fixups.append((node, k, int(v)))
                elif not (1e-4 <= abs(v) < 1e16) or v.is_integer():
                    return None
            else:
                return None
    return fixups


def _with_fixups(value: Any, fixups: list[_Fixup]) -> Any:
    """``value`` with each fixup applied to a copy of the containers on its path.

    Raises ``KeyError`` for a container reached twice (shared): the slow path decides.
    """
    if not fixups:
        return value
    if all(container is value for container, _, _ in fixups):
        top = dict(value) if type(value) is dict else list(value)
        for _, k, spelled in fixups:
            top[k] = spelled
        return top
    parents: dict[int, tuple[Any, Any]] = {}
    stack = [value]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for k, member in items:
            if type(member) is dict or type(member) is list:
                if id(member) in parents:
                    raise KeyError("shared container")
                parents[id(member)] = (node, k)
                stack.append(member)
    copies: dict[int, Any] = {}

    def copy_of(container: Any) -> Any:
        made = copies.get(id(container))
        if made is None:
            made = dict(container) if isinstance(container, dict) else list(container)
            copies[id(container)] = made
            if container is not value:
                parent, k = parents[id(container)]
                copy_of(parent)[k] = made
        return made

    for container, k, spelled in fixups:
        copy_of(container)[k] = spelled
    return copies[id(value)]


_FAST = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _fast_dumps(value: Any, *, big_ints: bool) -> bytes | None:
    """The ``json`` encoding, when it is the RFC 8785 one; None when the slow path decides.

    JCS string escaping is ``json``'s with ``ensure_ascii=False`` (the short escapes for
    backspace, tab, newline, form feed and carriage return, other control characters as
    lowercase ``\\u00xx``); a lone surrogate fails the UTF-8 encoding and gives None.
    """
    fixups = _plain(value, big_ints=big_ints)
    if fixups is None:
        return None
    try:
        return _FAST.encode(_with_fixups(value, fixups)).encode("utf-8")
    except (UnicodeEncodeError, ValueError, TypeError, RecursionError, KeyError):
        return None


def jcs_dumps(value: Any) -> bytes:
    """``rfc8785.dumps(value)``, taking the C ``json`` encoder when that gives the same bytes.

    Raises what ``rfc8785.dumps`` raises for values JCS cannot encode.
    """
    fast = _fast_dumps(value, big_ints=False)
    return fast if fast is not None else rfc8785.dumps(value)


def canonical_bytes(value: Any) -> bytes:
    """Serialize ``value`` as RFC 8785 (JCS) canonical JSON bytes.

    Raises :class:`InputError` for values JSON cannot represent canonically (NaN,
    infinities, integers not exactly representable as IEEE 754 doubles, non-string keys).
    """
    with map_errors(InputError, "value cannot be canonicalized (RFC 8785)"):
        fast = _fast_dumps(value, big_ints=True)
        return fast if fast is not None else rfc8785.dumps(_as_jcs_numbers(value))


def sha256_ref(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def digest_bytes(ref: str, *, what: str = "digest") -> bytes:
    """The 32 raw bytes of a ``sha256:<hex>`` string; :class:`InputError` if malformed."""
    if not isinstance(ref, str) or not _DIGEST.match(ref):
        raise InputError(f"{what} must be 'sha256:' followed by 64 lowercase hex characters")
    return bytes.fromhex(ref[len("sha256:") :])


def digest_ref(raw: bytes) -> str:
    """The ``sha256:<hex>`` form of 32 raw digest bytes."""
    return "sha256:" + raw.hex()
