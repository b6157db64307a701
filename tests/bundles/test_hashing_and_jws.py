"""OPA-style file digests and the JWS used in ``.signatures.json``.

That the digests are OPA's own is proven against the real OPA in ``test_opa_judge.py``;
these tests pin the properties that make them so.
"""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.bundles import SigningAlg
from engine.bundles.hashing import file_digest
from engine.bundles.keys import load_signing_key, load_verification_key
from engine.bundles.sign import b64url_encode, sign_jws, verify_jws
from engine.errors import BundleError
from tests.bundles.support import KeyPair


def test_json_data_is_hashed_canonically_rego_as_raw_bytes() -> None:
    a = b'{"b": [1, 2], "a": {"y": true, "x": null}}'
    b = b'{\n  "a": {"x": null, "y": true},\n  "b": [1,2]\n}\n'
    assert file_digest("x/data.json", a) == file_digest("x/data.json", b)
    assert file_digest(".manifest", a) == file_digest(".manifest", b)
    # Any other file, .rego included, is its bytes.
    assert file_digest("x/p.rego", a) == hashlib.sha256(a).hexdigest()
    assert file_digest("x/p.rego", a) != file_digest("x/p.rego", b)


def test_canonical_form_matches_the_go_encoder() -> None:
    # Keys sorted, no whitespace, number literals verbatim, HTML not escaped, U+2028 escaped.
    raw = '{"z": 1.50, "a": "<&>\u2028é", "n": [-0.0, 2e3]}'.encode()
    canonical = b'{"a":"<&>\\u2028\xc3\xa9","n":[-0.0,2e3],"z":1.50}'
    assert file_digest("data.json", raw) == hashlib.sha256(canonical).hexdigest()


def test_a_utf8_bom_is_ignored_like_opa() -> None:
    assert file_digest("data.json", b'\xef\xbb\xbf{"a":1}') == file_digest("data.json", b'{"a":1}')


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [(b'{"a": NaN}', "not valid JSON"), (b"{", "not valid JSON"), (b'"\xff"', "not valid JSON")],
)
def test_bad_json_names_the_file(raw: bytes, fragment: str) -> None:
    with pytest.raises(BundleError, match=f"releasegate/data.json: {fragment}"):
        file_digest("releasegate/data.json", raw)


def test_yaml_data_and_weak_digests_are_refused() -> None:
    with pytest.raises(BundleError, match="YAML data files are not supported"):
        file_digest("releasegate/data.yaml", b"a: 1")
    with pytest.raises(BundleError, match="unsupported hash algorithm 'MD5'"):
        file_digest("p.rego", b"", algorithm="MD5")


@settings(max_examples=25, deadline=None)
@given(
    payload=st.dictionaries(
        st.text(max_size=8), st.one_of(st.text(max_size=16), st.integers(), st.booleans())
    ),
    alg=st.sampled_from([SigningAlg.ES256, SigningAlg.EDDSA]),
)
def test_sign_then_verify_round_trips(
    keys: dict[SigningAlg, KeyPair], payload: dict[str, object], alg: SigningAlg
) -> None:
    pair = keys[alg]
    token = sign_jws(payload, key=load_signing_key(pair.private), key_id="k")
    header, body = verify_jws(token, key=load_verification_key(pair.public))
    assert header == {"alg": alg.value, "kid": "k", "typ": "JWT"}
    assert json.loads(body) == payload


def test_signatures_are_deterministic(keys: dict[SigningAlg, KeyPair]) -> None:
    for pair in keys.values():
        key = load_signing_key(pair.private)
        assert sign_jws({"a": 1}, key=key, key_id="k") == sign_jws({"a": 1}, key=key, key_id="k")


def test_the_token_cannot_choose_its_algorithm(keys: dict[SigningAlg, KeyPair]) -> None:
    ec_public = load_verification_key(keys[SigningAlg.ES256].public)
    rsa_token = sign_jws({"a": 1}, key=load_signing_key(keys[SigningAlg.RS256].private), key_id="k")
    with pytest.raises(BundleError, match="token alg 'RS256' does not match"):
        verify_jws(rsa_token, key=ec_public)
    header = b64url_encode(b'{"alg":"none","kid":"k"}')
    with pytest.raises(BundleError, match="token alg 'none' does not match"):
        verify_jws(".".join([header, b64url_encode(b"{}"), ""]), key=ec_public)


def test_a_changed_payload_does_not_verify(keys: dict[SigningAlg, KeyPair]) -> None:
    pair = keys[SigningAlg.ES256]
    token = sign_jws({"a": 1}, key=load_signing_key(pair.private), key_id="k")
    h, _, s = token.split(".")
    forged = ".".join([h, b64url_encode(b'{"a":2}'), s])
    with pytest.raises(BundleError, match="signature does not verify"):
        verify_jws(forged, key=load_verification_key(pair.public))
