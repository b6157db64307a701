"""Canonical JSON, Ed25519 keys, key ids, the key ring and key files."""

from __future__ import annotations

import base64
import enum
import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import given
from hypothesis import strategies as st

from engine.errors import ConfigError, InputError, SignatureError
from engine.log.canonical import (
    MAX_REMEMBERED_STR,
    CanonicalCache,
    canonical_bytes,
    canonical_scalar,
    digest_bytes,
    flat_key,
    is_scalar,
    join_elements,
    join_members,
    sha256_ref,
)
from engine.log.keystore import (
    KEYRING_FILE,
    PRIVATE_KEY_FILE,
    generate_signing_key,
    keys_dir,
    load_signing_key,
)
from engine.log.record import canonical_members
from engine.log.signing import Ed25519Signer, KeyRing, key_id_for, raw_public_bytes

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def test_canonical_json_is_rfc8785() -> None:
    # RFC 8785 §3.2.2/3.2.3: sorted keys by UTF-16 code units, no whitespace, ES6 numbers.
    value = {"b": [1, 1.5e30, "\u20ac"], "a": {"z": None, "y": True}, "\u00e9": 1.0}
    assert canonical_bytes(value) == '{"a":{"y":true,"z":null},"b":[1,1.5e+30,"€"],"é":1}'.encode()


def test_canonical_rejects_nan_naming_the_problem() -> None:
    with pytest.raises(InputError, match="canonicalized"):
        canonical_bytes({"x": float("nan")})


def test_digest_helpers() -> None:
    ref = sha256_ref(b"abc")
    assert ref == "sha256:" + hashlib.sha256(b"abc").hexdigest()
    assert digest_bytes(ref) == hashlib.sha256(b"abc").digest()
    with pytest.raises(InputError, match="record_hash"):
        digest_bytes("sha256:XYZ", what="record_hash")


@given(json_values)
def test_canonical_sign_verify_round_trip(value: object) -> None:
    signer = _SIGNER
    data = canonical_bytes(value)
    assert canonical_bytes(json.loads(data)) == data
    ring = KeyRing()
    ring.add(signer.public_key)
    ring.verify(signer.key_id, data, signer.sign(data))


_SIGNER = Ed25519Signer.generate()


def test_key_id_is_sha256_of_raw_public_key() -> None:
    signer = Ed25519Signer.generate()
    raw = signer.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert len(raw) == 32 and raw == raw_public_bytes(signer.public_key)
    assert signer.key_id == hashlib.sha256(raw).hexdigest() == key_id_for(signer.public_key)


def test_keyring_json_round_trip_and_pem() -> None:
    a, b = Ed25519Signer.generate(), Ed25519Signer.generate()
    ring = KeyRing()
    ring.add(a.public_key, created="2026-01-01T00:00:00Z")
    ring.add(b.public_key)
    doc = ring.to_json()
    assert [k["key_id"] for k in doc["keys"]] == [a.key_id, b.key_id]
    assert {k["alg"] for k in doc["keys"]} == {"Ed25519"}
    again = KeyRing.from_text(json.dumps(doc))
    assert a.key_id in again and b.key_id in again
    pem = doc["keys"][0]["public_key_pem"]
    only_a = KeyRing.from_text(pem)
    assert len(only_a) == 1 and a.key_id in only_a
    only_a.verify(a.key_id, b"x", a.sign(b"x"))
    with pytest.raises(SignatureError, match="does not verify"):
        only_a.verify(a.key_id, b"y", a.sign(b"x"))
    with pytest.raises(SignatureError, match="unknown key id"):
        only_a.verify(b.key_id, b"x", b.sign(b"x"))


def test_keyring_rejects_a_lying_key_id_and_garbage() -> None:
    a, b = Ed25519Signer.generate(), Ed25519Signer.generate()
    ring = KeyRing()
    ring.add(a.public_key)
    doc = ring.to_json()
    doc["keys"][0]["key_id"] = b.key_id
    with pytest.raises(InputError, match=r"keys\[0\].key_id"):
        KeyRing.from_json(json.dumps(doc))
    with pytest.raises(InputError, match="keys"):
        KeyRing.from_json('{"nokeys": 1}')
    with pytest.raises(InputError, match="PEM"):
        KeyRing.from_text("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")


def test_generate_writes_0600_private_key_and_rotation_keeps_old_public_keys(
    tmp_path: Path,
) -> None:
    first = generate_signing_key(tmp_path)
    private = keys_dir(tmp_path) / PRIVATE_KEY_FILE
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600
    second = generate_signing_key(tmp_path)
    signer, ring = load_signing_key(tmp_path, create=False)
    assert signer.key_id == second.key_id != first.key_id
    assert first.key_id in ring and second.key_id in ring
    # The old key still verifies what it signed.
    ring.verify(first.key_id, b"old record", first.sign(b"old record"))
    on_disk = json.loads((keys_dir(tmp_path) / KEYRING_FILE).read_text())
    assert {k["key_id"] for k in on_disk["keys"]} == {first.key_id, second.key_id}


def test_missing_or_bad_key_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="keys generate"):
        load_signing_key(tmp_path, create=False)
    signer, _ = load_signing_key(tmp_path, create=True)
    assert (keys_dir(tmp_path) / PRIVATE_KEY_FILE).exists()
    (keys_dir(tmp_path) / PRIVATE_KEY_FILE).write_text("not a key")
    with pytest.raises(ConfigError, match="signing key .* is invalid"):
        load_signing_key(tmp_path, create=False)
    (keys_dir(tmp_path) / PRIVATE_KEY_FILE).unlink()
    (keys_dir(tmp_path) / PRIVATE_KEY_FILE).mkdir()
    with pytest.raises(ConfigError, match="unreadable"):
        load_signing_key(tmp_path, create=False)
    assert base64.b64decode(base64.b64encode(signer.sign(b"x")))


@given(st.dictionaries(st.text(), json_values, max_size=6), json_values)
def test_spliced_members_equal_the_full_canonical_encoding(
    body: dict[str, object], log: object
) -> None:
    # Keys such as "\U0001f600" vs "\uffff" sort differently by UTF-16 unit and code point.
    body = {k: v for k, v in body.items() if k != "log"} | {"\U0001f600": 1, "\uffff": 2}
    members = canonical_members(body)
    members["log"] = canonical_bytes("log") + b":" + canonical_bytes(log)
    assert join_members(members) == canonical_bytes(body | {"log": log})


@given(st.lists(st.dictionaries(st.sampled_from("abcdef"), json_values, max_size=6), max_size=6))
def test_cached_members_equal_members_encoded_afresh(bodies: list[dict[str, object]]) -> None:
    # One cache across a run of records, as a log keeps it: values that repeat (hits), values
    # that change (misses) and values that come back after another was seen.
    cache = CanonicalCache(max_entries=3)
    for body in [*bodies, *reversed(bodies)]:
        assert canonical_members(body, cache=cache) == canonical_members(body)


def test_the_input_member_is_never_looked_up_in_the_cache() -> None:
    cache = CanonicalCache()
    body = {"input": {"now_ns": 1}, "policy": {"revision": "r1"}, "reasons": []}
    canonical_members(body, cache=cache)
    canonical_members(body, cache=cache)
    # Only the policy was kept (the input changes with every decision; [] costs nothing).
    assert (len(cache), cache.hits, cache.misses) == (1, 1, 1)


_with_floats = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(), _with_floats, max_size=6), st.sets(st.text(max_size=3)))
def test_cached_encoding_equals_rfc8785_on_miss_and_on_hit(
    value: dict[str, object], uncached: set[str]
) -> None:
    cache = CanonicalCache(max_entries=4)
    cached = set(value) - uncached
    first = cache.encode_object(value, cached=cached)
    again = cache.encode_object(value, cached=cached)
    assert first == again == canonical_bytes(value)


def test_cache_tells_apart_values_json_text_confuses() -> None:
    cache = CanonicalCache()
    # Each pair is equal or alike for some encoder; rfc8785 writes different bytes or not.
    for a, b in [(1, True), (0, False), (None, float("nan")), ("1", 1), ([1, 2], [2, 1])]:
        for value in (a, b):
            try:
                expected: bytes | None = canonical_bytes({"x": value})
            except InputError:
                expected = None
            try:
                got: bytes | None = cache.encode_object({"x": value}, cached={"x"})
            except InputError:
                got = None
            assert got == expected, (a, b, value)
    assert cache.encode(1.0) == cache.encode(1) == b"1"  # equal in RFC 8785, cached apart


class _Stage(enum.StrEnum):
    DEPLOY = "deploy"


# Pairs whose members compare equal in Python, or whose JSON text an encoder confuses.
_FLAT_PAIRS = [
    (1, True), (0, False), (1, 1.0), (0.0, -0.0), (None, float("nan")), ("1", 1),
    (2**53, float(2**53)), (2**60, 2**60 + 1), ("deploy", _Stage.DEPLOY), ("é", "e\u0301"),
]  # fmt: skip


@pytest.mark.parametrize(("a", "b"), _FLAT_PAIRS)
def test_an_object_of_scalars_is_cached_by_its_members_exactly(a: object, b: object) -> None:
    cache = CanonicalCache()
    for value in ({"x": a, "y": "s"}, {"x": b, "y": "s"}) * 2:  # each on a miss, then a hit
        try:
            expected: bytes | None = canonical_bytes(value)
        except InputError:
            expected = None
        try:
            got: bytes | None = cache.encode(value)
        except InputError:
            got = None
        assert got == expected, (a, b, value)


def test_flat_keys_name_members_types_and_order() -> None:
    assert flat_key({"a": 1, "b": None}) == (("a", int, 1), ("b", type(None), None))
    assert flat_key({"a": True}) != flat_key({"a": 1}) != flat_key({"a": 1.0})
    assert flat_key({"a": 1, "b": 2}) != flat_key({"b": 2, "a": 1})  # a miss, never wrong
    for not_flat in ({"a": [1]}, {"a": {}}, {"a": _Stage.DEPLOY}, {1: "x"}, [1], "x", None):
        assert flat_key(not_flat) is None
    assert flat_key({}) == ()


@given(st.dictionaries(st.text(), _with_floats.filter(is_scalar), max_size=6))
def test_a_flat_object_encodes_as_rfc8785_on_miss_and_on_hit(value: dict[str, object]) -> None:
    cache = CanonicalCache(max_entries=4)
    assert cache.encode(value) == cache.encode(dict(value)) == canonical_bytes(value)


def test_cache_is_bounded_and_keeps_recent_values() -> None:
    cache = CanonicalCache(max_entries=2, max_entry_bytes=64)
    for value in ({"a": 1}, {"b": 2}, {"a": 1}, {"c": 3}):
        cache.encode(value)
    assert len(cache) == 2 and (cache.hits, cache.misses) == (1, 3)
    cache.encode({"b": 2})  # evicted: the least recently used
    assert cache.misses == 4
    cache.encode(["x" * 100])  # larger than an entry may be: encoded, not kept
    cache.encode(["x" * 100])
    assert cache.misses == 6 and len(cache) == 2
    cache.encode("a scalar")  # scalars are remembered apart (canonical_scalar)
    assert cache.misses == 6 and len(cache) == 2


def test_cache_refuses_what_rfc8785_refuses_and_keeps_no_failure() -> None:
    cache = CanonicalCache()
    for _ in range(2):
        with pytest.raises(InputError, match="RFC 8785"):
            cache.encode_object({"x": float("inf")}, cached={"x"})
        with pytest.raises(InputError, match="RFC 8785"):
            cache.encode_object({1: "non-string key"}, cached={"x"})  # type: ignore[dict-item]
    assert len(cache) == 0


@given(st.dictionaries(st.text(max_size=4), st.integers(-(2**53), 2**53), max_size=8), st.randoms())
def test_joined_members_are_the_canonical_object_in_any_insertion_order(
    doc: dict[str, int], rng: Any
) -> None:
    members = {k: canonical_bytes(k) + b":" + canonical_bytes(v) for k, v in doc.items()}
    shuffled = list(members.items())
    rng.shuffle(shuffled)
    expected = canonical_bytes(doc)
    for _ in range(2):  # the second time from the cached member order
        assert join_members(members) == expected
        assert join_members(dict(shuffled)) == expected


scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats() | st.text()


@given(st.lists(scalars, max_size=30))
def test_remembered_scalars_are_their_fresh_encodings(values: list[object]) -> None:
    # Twice over (the second pass from memory), True next to 1 next to 1.0, NaN refused
    # every time rather than remembered.
    for value in values + values + [True, 1, 1.0, False, 0, 0.0, -0.0]:
        try:
            fresh = canonical_bytes(value)
        except InputError:
            with pytest.raises(InputError):
                canonical_scalar(value)  # type: ignore[arg-type]
            continue
        assert canonical_scalar(value) == fresh  # type: ignore[arg-type]


def test_a_long_string_is_encoded_not_remembered() -> None:
    long = "x" * (MAX_REMEMBERED_STR + 1)
    assert canonical_scalar(long) == b'"' + long.encode() + b'"'
    assert canonical_scalar("x" * MAX_REMEMBERED_STR) == canonical_bytes("x" * MAX_REMEMBERED_STR)


@given(st.dictionaries(st.text(), _with_floats, max_size=6), st.sets(st.text(max_size=3)))
def test_members_the_caller_already_encoded_are_spliced_in(
    value: dict[str, object], given_names: set[str]
) -> None:
    # The pipeline hands in the bytes of the sections it keeps (engine.decision).
    known = {k: canonical_bytes(v) for k, v in value.items() if k in given_names}
    cache = CanonicalCache(max_entries=4)
    assert cache.encode_object(value, cached=set(value), known=known) == canonical_bytes(value)
    assert cache.encode_object(value, cached=set(), known=known) == canonical_bytes(value)


@given(st.lists(_with_floats, max_size=6))
def test_elements_joined_equal_the_array_encoded_whole(values: list[object]) -> None:
    assert join_elements([canonical_bytes(v) for v in values]) == canonical_bytes(values)
