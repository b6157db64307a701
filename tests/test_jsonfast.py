"""``engine.jsonfast.loads`` answers exactly as ``json.loads``: the same value, or the same
exception with the same message (FastAPI's ``json_invalid`` error quotes its position)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.jsonfast import loads

EDGE_CASES = [
    # Accepted by both.
    b"{}", b"[]", b'""', b"null", b"  \n\t{} \r\n", b'{"a":1,"a":2}', b"-0", b"-0.0", b"1E2",
    b'{"a":1,"b":2,"a":3,"c":{"x":1,"y":2,"x":0}}', b"1e400", b"-1e400", b"0.1e-400", b"NaN",
    b"Infinity", b"-Infinity", b'"\\/"',
    b'"\\u00e9"', b'"\\u0000"', b"9007199254740993", b"123456789012345678901234567890",
    b"1.7976931348623157e308", b"4.9e-324", b"2.2250738585072011e-308", b'{"\xc3\xa9":1}',
    # Accepted by the standard library only: the fallback reads them.
    b'\xef\xbb\xbf{"bom":true}', b'"\\ud800"', b'"\\udc00x"', b"[" * 300 + b"]" * 300,
    '{"utf16":1}'.encode("utf-16"), '{"utf32":1}'.encode("utf-32"),
    # Refused by both, with the standard library's error.
    b'{"a":"x\x01y"}', b'"\t"', b"01", b"1.", b".5", b"+1", b"-", b"1e", b"[1,]", b'{"a":1,}',
    b"{a:1}", b"{'a':1}", b"[1 2]", b"1 2", b"tru", b"True", b"nan", b"inf", b'{"a":1}x',
    b"\x00", b"{}\x00", b'{"\xff":1}', b'"\xc3\x28"', b"[" * 5000 + b"]" * 5000,
]  # fmt: skip


def _outcome(parse: Any, data: bytes) -> tuple[str, Any]:
    try:
        return "value", parse(data)
    except (ValueError, RecursionError) as exc:
        return type(exc).__name__, str(exc)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return repr(a) == repr(b)  # same types, same floats, same key order


@pytest.mark.parametrize("data", EDGE_CASES, ids=lambda d: repr(d[:24]))
def test_edge_cases_answer_as_the_standard_library(data: bytes) -> None:
    ours, theirs = _outcome(loads, data), _outcome(json.loads, data)
    assert ours[0] == theirs[0]
    assert _same(ours[1], theirs[1]) if ours[0] == "value" else ours[1] == theirs[1]


def test_big_integers_stay_exact() -> None:
    value = loads(b'{"n": 123456789012345678901234567890, "m": -18446744073709551617}')
    assert value == {"n": 123456789012345678901234567890, "m": -18446744073709551617}


json_documents = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


@given(json_documents, st.booleans(), st.sampled_from([None, 1, "\t"]))
def test_any_document_reads_back_as_the_standard_library_reads_it(
    value: Any, ascii_only: bool, indent: int | str | None
) -> None:
    data = json.dumps(value, ensure_ascii=ascii_only, indent=indent).encode(
        "utf-8", "surrogatepass"
    )
    ours, theirs = _outcome(loads, data), _outcome(json.loads, data)
    assert ours[0] == theirs[0]
    assert repr(ours[1]) == repr(theirs[1])  # same types, same floats, same key order
