"""Every evidence parser as a fuzz target, the Hypothesis mutation fuzzer and hostile runs.

A target takes one input (a decoded JSON document, or raw payload bytes for statements,
which are signed here with a trusted test key so the parser behind the signature is
reached) and returns an outcome label. The documented outcomes are: an ``AttestationFact``
with ``verification`` ``invalid`` / ``unsupported`` / ``failed`` (or ``verified``), an
:class:`~engine.errors.InputError`, an AdmissionReview answer, a decision request. Anything
else raises :class:`UndocumentedFailure`, which fails the run.
"""

from __future__ import annotations

import base64
import copy
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.adapters import flagger
from engine.adapters.admission import AdmissionConfig, AdmissionController
from engine.decision import DecisionPipeline
from engine.engines.fake import FakeEngine
from engine.errors import InputError
from engine.inputs.base import FactProviders, NoApprovalStore, NoSloConfigured
from engine.inputs.provenance import ProvenanceVerifier, TrustedKey
from engine.inputs.provenance.dsse_keys import load_public_key, pae, public_key_from_bytes
from engine.inputs.providers import ScanReports, SigstoreProvenance
from engine.inputs.scans import build_vulnerabilities_section
from engine.models.common import Verdict
from engine.models.decision import Decision, PolicyResult
from engine.models.request import ScanEvidence
from hardening import seeds
from hardening.figures import Figures
from hardening.hostile import CLASSES, PLACEHOLDER, HostileClass, measure, put, splice

Path_ = tuple[str | int, ...]
INTOTO = "application/vnd.in-toto+json"
ATTESTATION_OUTCOMES = frozenset({"verified", "invalid", "unsupported", "failed"})


class UndocumentedFailure(AssertionError):
    """A parser failed in a way other than its documented input error."""


@dataclass(frozen=True)
class Target:
    """One parser under test."""

    name: str
    seed: Callable[[], Any]
    run: Callable[[Any], str]
    """Input -> outcome label; raises UndocumentedFailure for anything undocumented."""
    hostile_path: Path_
    """Where a hostile value is placed in the seed."""
    raw: bool = False
    """The input is raw bytes (a statement payload), not a decoded document."""
    mutable_under: Path_ = ()
    """Mutations stay under this path (SLSA: the predicate)."""


# -- shared verifier material ------------------------------------------------------------


@cache
def _test_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


@cache
def verifier() -> ProvenanceVerifier:
    """The pinned public-good root, the corpus VSA key and the fuzzer's statement key."""
    pem = (
        _test_key()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    keys: list[TrustedKey] = [
        load_public_key(seeds.VSA_KEY, name="bcid-vsa"),
        public_key_from_bytes(pem, name="hardening-fuzzer"),
    ]
    packaged = resources.files("engine").joinpath("data/trusted_root.json")
    with resources.as_file(packaged) as root:
        return ProvenanceVerifier(Path(root), keys=keys)


def sign_statement(payload: bytes, payload_type: str = INTOTO) -> dict[str, Any]:
    """A DSSE envelope over ``payload`` signed by the fuzzer's trusted key."""
    signature = _test_key().sign(pae(payload_type, payload))
    return {
        "payloadType": payload_type,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": "hardening-fuzzer", "sig": base64.b64encode(signature).decode()}],
    }


def _fact(doc: Any, artifact: str = seeds.ARTIFACT_DIGEST) -> str:
    if not isinstance(doc, dict):
        # The request model admits objects only (Evidence.attestations: list[dict]).
        return "rejected_by_model"
    try:
        fact = verifier().evaluate(doc, artifact_digest=artifact)
    except Exception as exc:  # noqa: BLE001 - evaluate must never raise for bad input
        raise UndocumentedFailure(f"verifier raised {type(exc).__name__}: {exc!s:.300}") from exc
    if fact.verification not in ATTESTATION_OUTCOMES:
        raise UndocumentedFailure(f"unknown verification outcome {fact.verification!r}")
    return f"fact:{fact.verification}"


def _statement(payload: Any) -> str:
    if not isinstance(payload, bytes):
        payload = json.dumps(payload).encode("utf-8", "surrogatepass")
    return _fact(sign_statement(payload))


def _scan(fmt: str) -> Callable[[Any], str]:
    def run(report: Any) -> str:
        try:
            evidence = ScanEvidence.model_validate({"format": fmt, "report": report})
        except ValueError:
            return "rejected_by_model"  # pydantic: the HTTP layer's 422
        try:
            section = build_vulnerabilities_section(
                [evidence], artifact_digest=seeds.ARTIFACT_DIGEST
            )
        except InputError:
            return "input_error"
        except Exception as exc:  # noqa: BLE001
            raise UndocumentedFailure(f"{fmt}: {type(exc).__name__}: {exc!s:.300}") from exc
        return f"section:{section.status.value}"

    return run


class _NoPriors:
    def latest_allow_for(self, *args: Any, **kwargs: Any) -> Decision | None:
        return None


@cache
def _controller() -> AdmissionController:
    engine = FakeEngine(lambda _doc: PolicyResult(verdict=Verdict.ALLOW))
    providers = FactProviders(
        provenance=SigstoreProvenance(verifier()),
        vulnerabilities=ScanReports(),
        slo=NoSloConfigured(),
        approvals=NoApprovalStore(),
    )
    pipeline = DecisionPipeline(engine=engine, providers=providers)
    return AdmissionController(pipeline=pipeline, priors=_NoPriors(), config=AdmissionConfig())


def _admission(body: Any) -> str:
    try:
        answer, decision = _controller().review(body, caller="fuzzer")
    except InputError:
        return "input_error"
    except Exception as exc:  # noqa: BLE001
        raise UndocumentedFailure(f"admission: {type(exc).__name__}: {exc!s:.300}") from exc
    response = answer.get("response", {})
    if decision is None:
        if response.get("allowed") is not False:
            raise UndocumentedFailure("a malformed review was answered allowed")
        return "malformed_answer"
    return "decided"


def _flagger(body: Any) -> str:
    try:
        payload = flagger.parse_payload(body)
        hook = random.choice(list(flagger.FlaggerHook))  # noqa: S311 - not security
        flagger.decision_request(payload, hook)
    except InputError:
        return "input_error"
    except Exception as exc:  # noqa: BLE001
        raise UndocumentedFailure(f"flagger: {type(exc).__name__}: {exc!s:.300}") from exc
    return "request"


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("sigstore_bundle", seeds.sigstore_bundle, _fact, ("dsseEnvelope", "payload")),
        Target(
            "sigstore_msgsig",
            seeds.message_signature_bundle,
            _fact,
            ("messageSignature", "messageDigest", "digest"),
        ),  # fmt: skip
        Target("dsse_envelope", seeds.dsse_envelope, _fact, ("signatures", 0, "sig")),
        Target(
            "intoto_statement",
            seeds.intoto_statement,
            _statement,
            ("subject", 0, "digest"),
            raw=True,
        ),  # fmt: skip
        Target(
            "slsa_v1",
            seeds.intoto_statement,
            _statement,
            ("predicate", "runDetails", "builder"),
            raw=True,
            mutable_under=("predicate",),
        ),  # fmt: skip
        Target(
            "slsa_v02",
            seeds.slsa_v02_statement,
            _statement,
            ("predicate", "invocation"),
            raw=True,
            mutable_under=("predicate",),
        ),  # fmt: skip
        Target("trivy", lambda: seeds.scan_report("trivy"), _scan("trivy"), ("Results",)),
        Target("grype", lambda: seeds.scan_report("grype"), _scan("grype"), ("matches",)),
        Target("sarif", lambda: seeds.scan_report("sarif"), _scan("sarif"), ("runs", 0, "results")),
        Target(
            "cyclonedx",
            lambda: seeds.scan_report("cyclonedx"),
            _scan("cyclonedx"),
            ("vulnerabilities",),
        ),  # fmt: skip
        Target("osv", lambda: seeds.scan_report("osv"), _scan("osv"), ("results",)),
        Target("openvex", lambda: seeds.scan_report("openvex"), _scan("openvex"), ("statements",)),
        Target(
            "admission_review",
            seeds.admission_review,
            _admission,
            ("request", "object", "spec", "template", "spec", "containers", 0, "image"),
        ),  # fmt: skip
        Target("flagger_payload", seeds.flagger_payload, _flagger, ("metadata", "release_id")),
    )
}
"""Parser name -> target. The issue's twelve parsers; Sigstore bundles in both content kinds."""


# -- mutations -----------------------------------------------------------------------------


def paths(doc: Any, prefix: Path_ = ()) -> Iterator[Path_]:
    """Every path of ``doc`` (iteratively: seeds are shallow, mutated docs may not be)."""
    stack: list[tuple[Any, Path_]] = [(doc, prefix)]
    while stack:
        node, at = stack.pop()
        yield at
        if isinstance(node, dict):
            stack.extend((v, (*at, k)) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, (*at, i)) for i, v in enumerate(node))


HOSTILE_SCALARS: tuple[Any, ...] = (
    float("nan"), float("inf"), -float("inf"), 10**40, -(2**63), 2**64, 0, -1, True, None, "",
    "\ud800", "\x00", "sha256:", "sha256:" + "A" * 64, "a" * 70_000, [], {},
    "https://token.actions.githubusercontent.com", "CRITICAL", "not_affected",
)  # fmt: skip

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.sampled_from(HOSTILE_SCALARS)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


class _Container:
    """A dict or list addressed by a key of the right kind (checked by the caller)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getitem__(self, key: Any) -> Any:
        return self.inner[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        self.inner[key] = value

    def __delitem__(self, key: Any) -> None:
        del self.inner[key]


@st.composite
def mutated(draw: st.DrawFn, target: Target) -> Any:
    """The target's seed with 1-4 mutations: replace, delete, insert, duplicate, retype."""
    doc = copy.deepcopy(target.seed())
    candidates = [
        p for p in paths(doc) if p[: len(target.mutable_under)] == target.mutable_under and p
    ]
    for _ in range(draw(st.integers(1, 4))):
        if not candidates:
            break
        at = draw(st.sampled_from(candidates))
        parent_path, key = at[:-1], at[-1]
        parent: Any = doc
        try:
            for part in parent_path:
                parent = parent[part]
            current = parent[key]
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed it
        if not isinstance(parent, dict | list) or isinstance(parent, list) != isinstance(key, int):
            continue  # an earlier mutation changed its container
        parent = _Container(parent)
        action = draw(st.sampled_from(["replace", "delete", "insert", "wrap", "retype"]))
        if action == "replace":
            parent[key] = draw(json_values)
        elif action == "delete":
            del parent[key]
        elif action == "insert":
            if isinstance(current, dict):
                current[draw(st.text(max_size=12))] = draw(json_values)
            elif isinstance(current, list):
                current.insert(draw(st.integers(0, len(current))), draw(json_values))
            else:
                parent[key] = [current, draw(json_values)]
        elif action == "wrap":
            parent[key] = draw(st.sampled_from([[current], {"value": current}]))
        else:
            parent[key] = (
                str(current)
                if not isinstance(current, str)
                else current.encode("utf-8", "surrogatepass").hex()
            )
    if target.raw and draw(st.booleans()):
        # Statements arrive as bytes: sometimes not JSON at all, or with a trailing byte.
        raw = json.dumps(doc).encode()
        return draw(st.sampled_from([raw[: len(raw) // 2], raw + b"\xff", b"\xef\xbb\xbf" + raw]))
    return doc


def fuzz_target(
    target: Target, figures: Figures, *, examples: int, derandomize: bool = False
) -> None:
    """Run Hypothesis over mutations of the target's seed; undocumented failures raise."""

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=derandomize,
        suppress_health_check=list(HealthCheck),
    )
    @given(doc=mutated(target))
    def run(doc: Any) -> None:
        figures.parser_input(target.name, target.run(doc))

    run()


# -- hostile classes -----------------------------------------------------------------------


def hostile_input(target: Target, klass: HostileClass) -> tuple[str, Any]:
    """The seed with the hostile value at ``target.hostile_path``: ('bytes'|'value', input).

    Raw targets get spliced bytes; document targets get the decoded value, or, when JSON
    decoding refuses the bytes (invalid UTF-8, 5000-digit integers, 100k nesting), the
    label ``decoder`` and the bytes (the API and CLI stop those at the decoder).
    """
    seed = target.seed()
    raw = splice(put(seed, target.hostile_path, PLACEHOLDER), klass.fragment())
    if target.raw:
        return "bytes", raw
    try:
        json.loads(raw)
    except (ValueError, RecursionError):
        return "decoder", raw
    assert klass.value is not None
    return "value", put(seed, target.hostile_path, klass.value())


def run_hostile(
    target: Target, klass: HostileClass, figures: Figures, *, trace_memory: bool = True
) -> str:
    """Feed one hostile input to the target; record time and peak memory; return outcome."""
    kind, data = hostile_input(target, klass)
    if kind == "decoder":

        def decode_only() -> str:
            try:
                json.loads(data)
            except (ValueError, RecursionError) as exc:
                return f"decoder_refused:{type(exc).__name__}"
            raise UndocumentedFailure("the decoder accepted what it refused before")

        result = measure(decode_only, trace_memory=trace_memory)
    else:
        result = measure(lambda: target.run(data), trace_memory=trace_memory)
    figures.hostile_input(
        target.name, klass.name, seconds=result.seconds, peak=result.peak_bytes,
        outcome=result.outcome,
    )  # fmt: skip
    return result.outcome


def run_all_hostile(
    figures: Figures,
    *,
    classes: tuple[HostileClass, ...] = CLASSES,
    targets: list[str] | None = None,
    trace_memory: bool = True,
) -> None:
    """Every hostile class against every (chosen) target."""
    for name in targets or list(TARGETS):
        for klass in classes:
            run_hostile(TARGETS[name], klass, figures, trace_memory=trace_memory)
