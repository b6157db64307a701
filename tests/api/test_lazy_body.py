"""The lazy reader (``engine.api.lazy_body``) reads a decision request as the eager reader
does, with its evidence documents left as text, or declines and leaves the body to it.

"As the eager reader does": the request it returns dumps equal to the one
``engine.api.hot_routes`` makes from the fully parsed body (``jsonfast.loads``, then the
model). Declining is always allowed; returning something the eager reader would refuse, or
would read otherwise, never is.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.exceptions import RequestValidationError
from hypothesis import event, given, settings
from hypothesis import strategies as st

from engine import jsonfast
from engine.api.hot_routes import _decision_request
from engine.api.lazy_body import read_decision_request
from engine.inputs.provenance import Limits
from engine.models.raw import RawObject
from engine.models.request import DecisionRequestV1, ScanFormat
from tests.api.conftest import CONFORMANCE, dev_request, prod_request
from tests.conftest import ASSETS, REPO

REPORTS = sorted(p for p in (ASSETS / "scanners").rglob("*") if p.suffix in (".json", ".sarif"))


def _eager(body: bytes) -> DecisionRequestV1 | None:
    try:
        return _decision_request(jsonfast.loads(body))
    except (RequestValidationError, ValueError, RecursionError):
        return None


def _read_alike(body: bytes) -> DecisionRequestV1:
    lazy = read_decision_request(body)
    eager = _eager(body)
    assert lazy is not None and eager is not None
    assert lazy.model_dump() == eager.model_dump()
    return lazy


def _with_scans() -> dict[str, Any]:
    reports = [json.loads(p.read_bytes()) for p in REPORTS]
    scans = [{"report": r} for r in reports] + [{"format": "trivy", "report": reports[0]}]
    return {**prod_request(), "evidence": {**prod_request()["evidence"], "scans": scans}}


REAL = {
    **{f"examples/requests/{p.name}": json.loads(p.read_bytes())
       for p in sorted((REPO / "examples" / "requests").glob("*.json"))},
    "prod, one bundle": prod_request(),
    "dev, no evidence": dev_request(),
    "every scanner report": _with_scans(),
    "dry run": {**dev_request(), "dry_run": True},
    "empty evidence": {**dev_request(), "evidence": {}},
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(REAL))
@pytest.mark.parametrize("indent", [None, 2])
def test_a_real_request_is_read_alike_with_raw_evidence(case: str, indent: int | None) -> None:
    doc = REAL[case]
    body = json.dumps(doc, indent=indent).encode()
    request = read_decision_request(body)
    assert request is not None
    documents = list(request.evidence.attestations) + [s.report for s in request.evidence.scans]
    assert all(isinstance(d, RawObject) and not d.parsed for d in documents)
    _read_alike(body)
    assert len(documents) == len(doc.get("evidence", {}).get("attestations", [])) + len(
        doc.get("evidence", {}).get("scans", [])
    )


def test_duplicate_keys_are_read_alike() -> None:
    release = json.dumps(dev_request()["release"])
    bundle = (CONFORMANCE / "happy-path-v0.3" / "bundle.sigstore.json").read_text()
    body = (
        b'{"release": {"id": "first"}, "release": RELEASE, "dry_run": "no", "dry_run": true,'
        b' "artifact": {"digest": "sha256:00", "digest": "sha256:DIGEST"},'
        b' "evidence": {"attestations": [], "attestations": [{"a": 1, "a": BUNDLE}]}}'
    )
    for name, value in (("RELEASE", release), ("DIGEST", "ab" * 32), ("BUNDLE", bundle)):
        body = body.replace(name.encode(), value.encode())
    request = _read_alike(body)
    assert request.release.id == dev_request()["release"]["id"] and request.dry_run
    assert request.evidence.attestations[0].value == {"a": json.loads(bundle)}


def test_escaped_names_and_values_are_read_alike() -> None:
    body = json.dumps({**prod_request(release_id="caf\u00e9 \u2603"), "dry_run": False})
    escaped = body.replace('"release"', '"rel\\u0065ase"').encode()
    assert _read_alike(escaped).release.id == "caf\u00e9 \u2603"
    assert _read_alike(json.dumps(json.loads(body), ensure_ascii=False).encode())


def _body(doc: dict[str, Any], **replace: Any) -> bytes:
    return json.dumps({**doc, **replace}).encode()


BUNDLE = json.loads((CONFORMANCE / "happy-path-v0.3" / "bundle.sigstore.json").read_text())
DECLINED = {
    # Text the strict reader refuses (the eager reader may take it, or answer its error).
    "NaN in a report": _body(dev_request(), evidence={"scans": [{"report": {"x": float("nan")}}]}),
    "Infinity in an attestation": _body(dev_request(), evidence={"attestations": [{"x": 1e999}]}),
    "byte order mark": b"\xef\xbb\xbf" + _body(dev_request()),
    "trailing text": _body(dev_request()) + b" x",
    "not json": b"{not json",
    "a list": b"[1, 2]",
    "lone surrogate in the release": _body(dev_request()).replace(b"payments-dev-1", b"\\ud800"),
    "bad utf-8 in the release": _body(dev_request()).replace(b"payments-dev-1", b"\xff"),
    # Not the outline: the model's errors are the eager reader's to give.
    "missing artifact": _body({"release": dev_request()["release"]}),
    "unknown field": _body(dev_request(), extra=1),
    "unknown evidence field": _body(dev_request(), evidence={"sboms": []}),
    "unknown scan field": _body(dev_request(), evidence={"scans": [{"report": {}, "tool": "x"}]}),
    "evidence null": _body(dev_request(), evidence=None),
    "attestations null": _body(dev_request(), evidence={"attestations": None}),
    "an attestation that is a string": _body(dev_request(), evidence={"attestations": ["x"]}),
    "a report that is a list": _body(dev_request(), evidence={"scans": [{"report": [BUNDLE]}]}),
    "format null": _body(dev_request(), evidence={"scans": [{"format": None, "report": {}}]}),
    "an unknown format": _body(dev_request(), evidence={"scans": [{"format": "x", "report": {}}]}),
    "a release of the wrong type": _body(dev_request(), release=["payments"]),
    "dry_run not a boolean": _body(dev_request(), dry_run="perhaps"),
    "a bad digest": _body(dev_request(), artifact={"digest": "md5:00"}),
    "65 attestations": _body(dev_request(), evidence={"attestations": [{}] * 65}),
    "nested too deep": b'{"release": ' + b"[" * 5000 + b"]" * 5000 + b"}",
}


@pytest.mark.parametrize("case", sorted(DECLINED))
def test_off_the_common_path_it_declines(case: str) -> None:
    assert read_decision_request(DECLINED[case]) is None


# Hypothesis: request-like documents, valid and not, written in several ways.
_scalars = (
    st.none() | st.booleans() | st.integers() | st.text()
    | st.floats(allow_nan=False, allow_infinity=False)
)  # fmt: skip
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)
_object = st.dictionaries(st.text(max_size=5), _json, max_size=4)
_release = st.fixed_dictionaries(
    {
        "id": st.text(max_size=8),
        "service": st.just("s"),
        "environment": st.sampled_from(["dev", "prod"]),
        "stage": st.sampled_from(["deploy", "canary", "nope"]),
    },
    optional={"version": st.text(max_size=4) | st.none(), "requested_by": _scalars},
)
_valid_release = st.fixed_dictionaries(
    {
        "id": st.text(min_size=1, max_size=8),
        "service": st.just("s"),
        "environment": st.sampled_from(["dev", "prod"]),
        "stage": st.just("deploy"),
    },
    optional={"version": st.text(min_size=1, max_size=4), "requested_by": st.text(min_size=1)},
)
_digest = st.sampled_from(["sha256:" + "ab" * 32] * 3 + ["sha256:x"])
_scan = st.fixed_dictionaries(
    {"report": st.one_of(_object, _object, _json)},
    optional={"format": st.sampled_from([f.value for f in ScanFormat]) | _scalars},
)
_evidence = st.fixed_dictionaries(
    {},
    optional={
        "attestations": st.lists(st.one_of(_object, _object, _json), max_size=3),
        "scans": st.lists(_scan, max_size=3),
    },
)
_request = st.fixed_dictionaries(
    {
        "release": st.one_of(_valid_release, _valid_release, _release, _json),
        "artifact": st.fixed_dictionaries({"digest": _digest}) | _json,
    },
    optional={"evidence": _evidence | _json, "dry_run": st.booleans() | _scalars, "extra": _json},
)


@settings(max_examples=300, deadline=None)
@given(doc=_request, indent=st.sampled_from([None, 0, 2]), ascii_only=st.booleans())
def test_a_request_is_read_alike_or_declined(
    doc: dict[str, Any], indent: int | None, ascii_only: bool
) -> None:  # noqa: E501
    body = json.dumps(doc, indent=indent, ensure_ascii=ascii_only).encode()
    lazy = read_decision_request(body)
    eager = _eager(body)
    # Strict JSON without NaN: the lazy reader takes exactly what the eager one does.
    assert (lazy is None) == (eager is None)
    event("read" if lazy is not None else "declined")
    if lazy is not None and eager is not None:
        assert lazy.model_dump() == eager.model_dump()
        for raw, value in zip(lazy.evidence.attestations, eager.evidence.attestations, strict=True):
            assert isinstance(raw, RawObject) and raw.value == value


def test_an_unreadable_document_is_left_for_later() -> None:
    # The strict reader checks syntax, not UTF-8 inside a string: the raw object raises when
    # read, and the route reads the body eagerly (tests/api/test_hot_routes.py).
    body = _body(prod_request()).replace(b'"mediaType"', b'"mediaType\xff"', 1)
    request = read_decision_request(body)
    assert request is not None and _eager(body) is None


def test_the_model_refuses_what_the_verifier_would_before_any_document_is_read() -> None:
    # A lazily read request refused by a provider before its raw documents were parsed
    # would be refused for another reason than the eager reader's (which parses first).
    # The only such refusal is the verifier's cap on attestations: it must not be below
    # the model's, which refuses first (and sends the body to the eager reader).
    evidence = DecisionRequestV1.model_json_schema()["$defs"]["Evidence"]["properties"]
    assert Limits().max_attestations >= evidence["attestations"]["maxItems"]
