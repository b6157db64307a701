"""RFC 8785 canonical JSON and the SHA-256 digest strings used throughout the log.

Digests are written ``sha256:<64 lowercase hex>`` on the wire (records, checkpoints' JSON
form); the raw 32 bytes are what the Merkle tree and the signatures consume.
"""

from __future__ import annotations

import functools
import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Collection, Hashable, Mapping, Sequence
from typing import Any

import rfc8785

from engine.errors import InputError, map_errors
from engine.jsonfast import fingerprint

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


def jcs_dumps(value: Any) -> bytes:
    """``rfc8785.dumps(value)``: canonical JSON comes from the library, never hand-rolled.

    NOTE(lead): a guarded fast path through the C ``json`` encoder was measured (about
    0.3 ms less CPU per decision) and removed: canonical bytes are what signatures and
    digests cover, and the project's rule is that only the ``rfc8785`` package makes them.
    """
    return rfc8785.dumps(value)


def canonical_bytes(value: Any) -> bytes:
    """Serialize ``value`` as RFC 8785 (JCS) canonical JSON bytes.

    Raises :class:`InputError` for values JSON cannot represent canonically (NaN,
    infinities, integers not exactly representable as IEEE 754 doubles, non-string keys).
    """
    with map_errors(InputError, "value cannot be canonicalized (RFC 8785)"):
        return rfc8785.dumps(_as_jcs_numbers(value))


MAX_REMEMBERED_STR = 256
"""Longer strings are encoded every time (see :func:`canonical_scalar`)."""


def canonical_scalar(value: str | int | float | bool | None) -> bytes:
    """``canonical_bytes(value)`` of a JSON scalar, the recent ones remembered.

    A record and an input document carry a dozen scalars (a verdict, an adapter, a
    caller, ``dry_run``, a schema version) that mostly repeat, and a call of ``rfc8785``
    costs 2-4 µs even for ``true``. The bytes still come from ``rfc8785``; they are kept by
    value *and type* (``True``, ``1`` and ``1.0`` are three entries). Strings longer than
    :data:`MAX_REMEMBERED_STR` characters are not kept.
    """
    if isinstance(value, str) and len(value) > MAX_REMEMBERED_STR:
        return canonical_bytes(value)
    return _remembered_scalar(value)


@functools.lru_cache(maxsize=4096, typed=True)
def _remembered_scalar(value: str | int | float | bool | None) -> bytes:
    return canonical_bytes(value)


EMPTY_ARRAY = canonical_bytes([])
EMPTY_OBJECT = canonical_bytes({})
"""``[]`` and ``{}`` as ``rfc8785`` writes them (a record has four empty lists, usually)."""


def is_scalar(value: Any) -> bool:
    """A JSON scalar (``None``, a string, a number, a boolean)."""
    return value is None or isinstance(value, str | int | float)


@functools.lru_cache(maxsize=256)
def canonical_key(key: str) -> bytes:
    """RFC 8785 encoding of an object member name (a record has the same few, so cached)."""
    return canonical_bytes(key)


def join_members(members: Mapping[str, bytes]) -> bytes:
    """The canonical object made of members already encoded as ``"key":value``.

    RFC 8785 §3.2.3: members sorted by the UTF-16 code units of their keys, joined by ``,``
    in ``{}``. Each member's bytes must come from ``rfc8785`` (:func:`canonical_key`,
    :func:`canonical_bytes`); only their order and the punctuation are added here.
    """
    return b"{" + b",".join(members[k] for k in _member_order(tuple(members))) + b"}"


def join_elements(elements: Sequence[bytes]) -> bytes:
    """The canonical array of elements already encoded (RFC 8785 §3.2: order kept, joined by
    ``,`` in ``[]``). Each element's bytes must come from ``rfc8785``; only the punctuation is
    added here, as :func:`join_members` does for objects."""
    return b"[" + b",".join(elements) + b"]"


@functools.lru_cache(maxsize=256)
def _member_order(keys: tuple[str, ...]) -> tuple[str, ...]:
    """RFC 8785's member order of ``keys``: by their UTF-16 code units. A record and an input
    document have the same few sets of member names, so their order is found once (sorting
    them took 5 of join_members' 6 µs)."""
    return tuple(sorted(keys, key=lambda k: k.encode("utf-16-be")))


_FLAT_TYPES = frozenset({str, int, float, bool, type(None)})


def flat_key(value: Any) -> tuple[tuple[str, type, Any], ...] | None:
    """A cache key for a dict whose values are all plain JSON scalars: its members with
    their exact types, in order (``True`` and ``1``, ``1`` and ``1.0`` apart; equal keys
    mean ``rfc8785`` writes equal bytes). None for anything else (a subclass, such as an
    enum member, included): the caller fingerprints it instead."""
    if value.__class__ is not dict:
        return None
    key = []
    for k, v in value.items():
        kind = v.__class__
        if kind not in _FLAT_TYPES or k.__class__ is not str:
            return None
        key.append((k, kind, v))
    return tuple(key)


class CanonicalCache:
    """RFC 8785 encodings of values seen recently, found again by their fingerprint.

    A decision's input document repeats most of itself from one request to the next: the
    verified provenance and the vulnerability facts of an artifact are the same until its
    evidence changes. ``rfc8785`` is pure Python and slow on numbers (the 0.8 KB
    vulnerability section of the benchmark request takes 0.14 ms, most of the document's
    0.18 ms). The cache keeps what ``rfc8785`` made for a value, keyed by
    :func:`engine.jsonfast.fingerprint` (SHA-256 of its JSON text: different values never
    share one; the same value written in another key order is a miss, never a wrong hit).

    An object of scalars only (a release, an artifact, the engine, a request's metadata: a
    record has five) is keyed by its members instead (:func:`flat_key`, 2 against 5 µs).

    NOTE: every byte still comes from ``rfc8785``; the cache only avoids making the same
    bytes twice. Thread-safe (the pipeline runs on the event loop and in worker threads).
    """

    def __init__(self, max_entries: int = 256, max_entry_bytes: int = 256 * 1024) -> None:
        self.max_entries = max_entries
        self.max_entry_bytes = max_entry_bytes
        self._entries: OrderedDict[Hashable, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def encode(self, value: Any) -> bytes:
        """``canonical_bytes(value)``, from the cache when this value was encoded before."""
        if is_scalar(value):
            return canonical_scalar(value)
        key: Hashable | None = flat_key(value)
        if key is None:
            key = fingerprint(value)
        if key is None:
            return canonical_bytes(value)
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return found
            self.misses += 1
        encoded = canonical_bytes(value)  # InputError propagates; failures are not kept
        if len(encoded) <= self.max_entry_bytes:
            with self._lock:
                self._entries[key] = encoded
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
        return encoded

    def encode_object(
        self,
        value: Mapping[str, Any],
        cached: Collection[str],
        known: Mapping[str, bytes] | None = None,
    ) -> bytes:
        """``canonical_bytes(value)`` of an object, the members named in ``cached`` via the
        cache; the others are encoded afresh (values that change every time, like a clock).
        ``known``: encodings of some members' values the caller already has (made by this
        cache or ``rfc8785``), by member name."""
        if not all(isinstance(k, str) for k in value):
            return canonical_bytes(dict(value))  # refused there, with its message
        known = known or {}

        def member(k: str, v: Any) -> bytes:
            if k in known:
                return known[k]
            return self.encode(v) if k in cached else canonical_bytes(v)

        return join_members({k: canonical_key(k) + b":" + member(k, v) for k, v in value.items()})

    def __len__(self) -> int:
        return len(self._entries)


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
