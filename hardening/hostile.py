"""Hostile input classes, as raw JSON bytes and (where JSON can carry them) decoded values.

Each class is spliced into a real document at a chosen place: as bytes for the HTTP layer
(``POST`` of the raw body) and for payloads that are themselves bytes (a DSSE payload), and
as a decoded value for the parsers that receive decoded JSON. :func:`measure` runs one input
under ``tracemalloc`` and reports wall time and peak traced memory; the suite asserts on
outcomes only, never on those numbers.
"""

from __future__ import annotations

import json
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

PLACEHOLDER = "__releasegate_hostile__"
DEEP = 100_000
SHALLOW_DEEP = 900
"""Just under CPython's default recursion limit: decodes, then stresses every recursive walk."""
HUGE_ARRAY = 1_000_000
GIANT_STRING = 3_000_000
MANY_KEYS = 100_000


def deep_list(depth: int) -> list[Any]:
    """``[[[...]]]`` nested ``depth`` levels, built without recursion."""
    root: list[Any] = []
    node = root
    for _ in range(depth - 1):
        child: list[Any] = []
        node.append(child)
        node = child
    return root


def deep_object(depth: int) -> dict[str, Any]:
    """``{"a": {"a": ...}}`` nested ``depth`` levels."""
    root: dict[str, Any] = {}
    node = root
    for _ in range(depth - 1):
        child: dict[str, Any] = {}
        node["a"] = child
        node = child
    return root


@dataclass(frozen=True)
class HostileClass:
    """One kind of hostile input."""

    name: str
    fragment: Callable[[], bytes]
    """The raw JSON bytes of the hostile value (may be invalid JSON on purpose)."""
    value: Callable[[], Any] | None
    """The decoded value, when JSON decoding yields one (None: the decoder must refuse)."""


def _big_int_value() -> int:
    return int("1" + "0" * 5000)


def hostile_classes(
    *, huge: int = HUGE_ARRAY, keys: int = MANY_KEYS, giant: int = GIANT_STRING
) -> tuple[HostileClass, ...]:
    """Every hostile class; the issue's list plus lone surrogates, big ints and control bytes.

    ``huge``, ``keys`` and ``giant`` size the array, object and string classes (the pytest
    suite uses smaller ones than the long mode; nesting is always 100 000 levels).
    """
    return (
        HostileClass(
            "deep_nesting_100k", lambda: b"[" * DEEP + b"]" * DEEP, lambda: deep_list(DEEP)
        ),
        HostileClass(
            "deep_nesting_900",
            lambda: b"[" * SHALLOW_DEEP + b"]" * SHALLOW_DEEP,
            lambda: deep_list(SHALLOW_DEEP),
        ),
        HostileClass(
            "deep_objects_900",
            lambda: b'{"a":' * (SHALLOW_DEEP - 1) + b"{}" + b"}" * (SHALLOW_DEEP - 1),
            lambda: deep_object(SHALLOW_DEEP),
        ),
        HostileClass("huge_array", lambda: b"[" + b"0," * (huge - 1) + b"0]", lambda: [0] * huge),
        HostileClass("giant_string", lambda: b'"' + b"x" * giant + b'"', lambda: "x" * giant),
        HostileClass(
            "many_keys",
            lambda: b"{" + b",".join(b'"k%d":0' % i for i in range(keys)) + b"}",
            lambda: {f"k{i}": 0 for i in range(keys)},
        ),
        HostileClass(
            "duplicate_keys",
            lambda: b'{"sha256":"a","sha256":1,"sha256":{"x":null}}',
            lambda: json.loads('{"sha256":"a","sha256":1,"sha256":{"x":null}}'),
        ),
        HostileClass("invalid_utf8", lambda: b'"\xff\xfe\xc3\x28 \xed\xa0\x80"', None),
        HostileClass("lone_surrogate", lambda: b'"\\ud800x\\udfff"', lambda: "\ud800x\udfff"),
        HostileClass("float_1e400", lambda: b"1e400", lambda: float("inf")),
        HostileClass("float_-1e400", lambda: b"-1e400", lambda: float("-inf")),
        HostileClass("nan_literal", lambda: b"NaN", lambda: float("nan")),
        HostileClass("infinity_literal", lambda: b"Infinity", lambda: float("inf")),
        HostileClass("int_5000_digits", lambda: b"1" + b"0" * 5000, _big_int_value),
        HostileClass(
            "nul_and_controls", lambda: b'"a\\u0000b\\u001b[31m"', lambda: "a\x00b\x1b[31m"
        ),
    )


CLASSES = hostile_classes()
"""Full size: 1 000 000-element arrays, 100 000 keys, 3 MB strings (the long mode)."""
QUICK_CLASSES = hostile_classes(huge=100_000, keys=10_000, giant=1_000_000)
"""Smaller arrays, objects and strings (the pytest suite); the other classes are the same."""
CLASS_NAMES = tuple(c.name for c in CLASSES)


def splice(template: Any, fragment: bytes) -> bytes:
    """``template`` as JSON with the string ``PLACEHOLDER`` replaced by raw ``fragment``."""
    text = json.dumps(template, separators=(",", ":")).encode()
    marker = json.dumps(PLACEHOLDER).encode()
    if text.count(marker) != 1:
        raise ValueError("the template must hold the placeholder exactly once")
    return text.replace(marker, fragment)


def put(doc: Any, path: tuple[str | int, ...], value: Any) -> Any:
    """A copy of ``doc`` (copied along ``path`` only) with ``value`` at ``path``."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(doc, dict):
        out_d = dict(doc)
        out_d[head] = put(doc.get(head), rest, value)
        return out_d
    if isinstance(doc, list) and isinstance(head, int):
        out_l = list(doc)
        if head < len(out_l):
            out_l[head] = put(out_l[head], rest, value)
        else:
            out_l.append(put(None, rest, value))
        return out_l
    return {head: put(None, rest, value)}


@dataclass(frozen=True)
class Measured:
    """Outcome label, wall seconds and peak traced bytes of one run."""

    outcome: str
    seconds: float
    peak_bytes: int


def measure(run: Callable[[], str], *, trace_memory: bool = True) -> Measured:
    """Run ``run`` (which returns its outcome label): timed, then again under tracemalloc.

    Time comes from the untraced run (tracemalloc slows allocation-heavy code many times
    over); the peak from the traced one. ``trace_memory=False`` skips the second run (peak
    0). Exceptions propagate: the caller decides which are documented outcomes.
    """
    started = time.perf_counter()
    outcome = run()
    seconds = time.perf_counter() - started
    if not trace_memory:
        return Measured(outcome, seconds, 0)
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base, _ = tracemalloc.get_traced_memory()
    try:
        run()
    finally:
        _, peak = tracemalloc.get_traced_memory()
        if not was_tracing:
            tracemalloc.stop()
    return Measured(outcome, seconds, max(0, peak - base))
