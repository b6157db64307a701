"""The pipeline with a FakeEngine: fail-closed mapping, digests, ids, recording."""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
from typing import Any

import pytest
import rfc8785

from engine.decision import DecisionPipeline, format_timestamp, input_digest
from engine.engines.base import EncodedInput
from engine.engines.fake import FakeEngine
from engine.errors import EngineUnavailable, StoreError
from engine.inputs.base import FactProviders, NoApprovalStore, NoSloConfigured
from engine.models.common import SectionStatus, Verdict
from engine.models.decision import Decision, PolicyInfo, PolicyResult, Reason
from engine.models.inputs import AdmissionSection, ImageFact
from engine.models.parse import parse_request
from engine.models.provenance import ProvenanceSection
from engine.models.vulnerabilities import VulnerabilitiesSection

NOW = 1795694400123456789
REQUEST = {
    "release": {"id": "r1", "service": "payments", "environment": "prod", "stage": "deploy"},
    "artifact": {"digest": "sha256:" + "b" * 64},
}


class _NoProvenance:
    def collect(self, attestations: Any, *, artifact_digest: str) -> ProvenanceSection:
        return ProvenanceSection(status=SectionStatus.MISSING)


class _NoScans:
    def collect(self, scans: Any, *, artifact_digest: str) -> VulnerabilitiesSection:
        return VulnerabilitiesSection(status=SectionStatus.MISSING)


PROVIDERS = FactProviders(
    provenance=_NoProvenance(),
    vulnerabilities=_NoScans(),
    slo=NoSloConfigured(),
    approvals=NoApprovalStore(),
)


class _Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.canonical: list[bytes | None] = []
        self.appended: list[tuple[Decision, dict[str, Any], str | None, str]] = []

    def append(
        self,
        decision: Decision,
        *,
        input_document: dict[str, Any],
        caller: str | None,
        adapter: str,
        input_canonical: bytes | None = None,
    ) -> Decision:
        if self.fail:
            raise StoreError("disk full")
        self.appended.append((decision, input_document, caller, adapter))
        self.canonical.append(input_canonical)
        return decision


def _pipeline(engine: FakeEngine, recorder: _Recorder | None = None) -> DecisionPipeline:
    return DecisionPipeline(
        engine=engine, providers=PROVIDERS, recorder=recorder, clock=lambda: NOW
    )


def test_allow_passes_through_with_identity_fields() -> None:
    engine = FakeEngine(lambda doc: PolicyResult(verdict=Verdict.ALLOW))
    decision = _pipeline(engine).decide(parse_request(REQUEST), caller="ci")
    assert decision.verdict is Verdict.ALLOW
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", decision.decision_id
    )
    assert decision.timestamp == "2026-11-26T12:00:00.123456Z"
    document = engine.calls[0]
    assert document["now_ns"] == NOW - NOW % 1024
    assert document["release"]["caller"] == "ci"
    assert "caller" not in decision.release
    canonical = rfc8785.dumps({**document, "now_ns": float(document["now_ns"])})
    assert decision.input_digest == "sha256:" + hashlib.sha256(canonical).hexdigest()
    # The engine was handed these very bytes with the document (OPA is sent them as they are).
    assert isinstance(document, EncodedInput) and document.canonical == canonical


def test_the_decision_names_the_bundle_its_result_came_from() -> None:
    # An engine that swapped bundles while this evaluation was in flight reports the new one
    # as engine.policy; the result says which bundle evaluated it, and that is recorded.
    evaluated = PolicyInfo(revision="evaluated", digest="sha256:" + "1" * 64)
    engine = FakeEngine(
        lambda doc: PolicyResult(verdict=Verdict.ALLOW).evaluated_by(evaluated), revision="newer"
    )
    assert _pipeline(engine).decide(parse_request(REQUEST)).policy == evaluated
    plain = FakeEngine(lambda doc: PolicyResult(verdict=Verdict.ALLOW), revision="newer")
    assert _pipeline(plain).decide(parse_request(REQUEST)).policy == plain.policy


def test_engine_error_becomes_pause_engine_unavailable() -> None:
    engine = FakeEngine(lambda doc: EngineUnavailable("connection refused"))
    decision = _pipeline(engine).decide(parse_request(REQUEST))
    assert decision.verdict is Verdict.PAUSE
    assert [r.code for r in decision.reasons] == ["engine_unavailable"]
    assert "connection refused" in decision.reasons[0].message


@pytest.mark.parametrize("claimed", [Verdict.ALLOW, Verdict.PAUSE])
def test_verdict_weaker_than_its_reasons_is_refused(claimed: Verdict) -> None:
    reason = Reason(code="vuln_critical", verdict=Verdict.ROLLBACK, policy="p", message="m")
    engine = FakeEngine(lambda doc: PolicyResult(verdict=claimed, reasons=[reason]))
    decision = _pipeline(engine).decide(parse_request(REQUEST))
    assert decision.verdict is Verdict.PAUSE
    assert decision.reasons[0].code == "engine_unavailable"


def test_rollback_without_reasons_is_refused() -> None:
    engine = FakeEngine(lambda doc: PolicyResult(verdict=Verdict.ROLLBACK))
    assert _pipeline(engine).decide(parse_request(REQUEST)).reasons[0].code == "engine_unavailable"


def test_decision_is_recorded_before_it_is_returned() -> None:
    recorder = _Recorder()
    engine = FakeEngine(lambda doc: PolicyResult(verdict=Verdict.ALLOW))
    decision = _pipeline(engine, recorder).decide(
        parse_request(REQUEST), caller="ci", adapter="api"
    )
    assert len(recorder.appended) == 1
    recorded, document, caller, adapter = recorder.appended[0]
    assert recorded.decision_id == decision.decision_id
    assert input_digest(document) == decision.input_digest
    assert recorder.canonical == [rfc8785.dumps({**document, "now_ns": float(document["now_ns"])})]
    assert (caller, adapter) == ("ci", "api")


def test_no_verdict_without_a_record() -> None:
    engine = FakeEngine(lambda doc: PolicyResult(verdict=Verdict.ALLOW))
    with pytest.raises(StoreError):
        _pipeline(engine, _Recorder(fail=True)).decide(parse_request(REQUEST))


def test_timestamp_format() -> None:
    assert format_timestamp(0) == "1970-01-01T00:00:00.000000Z"


# -- decide_async: the service's path, on an event loop ------------------------------------


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_decide_async_gives_what_decide_gives() -> None:
    reason = Reason(code="approval_missing", verdict=Verdict.PAUSE, policy="p", message="m")
    engine = FakeEngine(lambda doc: PolicyResult(verdict=Verdict.PAUSE, reasons=[reason]))
    sync_recorder, async_recorder = _Recorder(), _Recorder()
    want = _pipeline(engine, sync_recorder).decide(parse_request(REQUEST), caller="ci")
    got = _run(_pipeline(engine, async_recorder).decide_async(parse_request(REQUEST), caller="ci"))
    assert got.model_dump(exclude={"decision_id"}) == want.model_dump(exclude={"decision_id"})
    assert engine.calls[0] == engine.calls[1]
    assert async_recorder.canonical == sync_recorder.canonical
    assert [d.decision_id for d, *_ in async_recorder.appended] == [got.decision_id]


def test_decide_async_fails_closed_and_never_returns_an_unrecorded_verdict() -> None:
    down = FakeEngine(lambda doc: EngineUnavailable("connection refused"))
    decision = _run(_pipeline(down).decide_async(parse_request(REQUEST)))
    assert (decision.verdict, decision.reasons[0].code) == (Verdict.PAUSE, "engine_unavailable")
    engine = FakeEngine(lambda doc: PolicyResult(verdict=Verdict.ALLOW))
    with pytest.raises(StoreError):
        _run(_pipeline(engine, _Recorder(fail=True)).decide_async(parse_request(REQUEST)))


class _ThreadNoted:
    """A provenance provider that notes the thread it ran on."""

    def __init__(self, *, may_block: bool) -> None:
        self.may_block = may_block
        self.threads: list[int] = []

    def collect(self, attestations: Any, *, artifact_digest: str) -> ProvenanceSection:
        self.threads.append(threading.get_ident())
        return ProvenanceSection(status=SectionStatus.MISSING)


class _ComputeOnlyScans(_NoScans):
    may_block = False


@pytest.mark.parametrize("may_block", [False, True])
def test_facts_are_gathered_on_the_loop_unless_a_provider_may_block(may_block: bool) -> None:
    provenance = _ThreadNoted(may_block=may_block)
    providers = FactProviders(
        provenance=provenance,
        vulnerabilities=_ComputeOnlyScans(),
        slo=NoSloConfigured(),
        approvals=NoApprovalStore(),
    )
    assert providers.may_block() is may_block
    engine = FakeEngine(lambda doc: PolicyResult(verdict=Verdict.ALLOW))
    pipeline = DecisionPipeline(engine=engine, providers=providers, clock=lambda: NOW)

    async def decide() -> int:
        await pipeline.decide_async(parse_request(REQUEST))
        return threading.get_ident()

    loop_thread = _run(decide())
    assert (provenance.threads[0] != loop_thread) is may_block


def test_providers_that_do_not_say_are_assumed_to_block() -> None:
    assert PROVIDERS.may_block()  # _NoProvenance and _NoScans do not say


class _Kept:
    """A provider that hands out the section it holds, as the production providers keep the
    section of a warm request (the verification and scan caches)."""

    may_block = False

    def __init__(self, section: Any) -> None:
        self.section = section

    def collect(self, evidence: Any, *, artifact_digest: str) -> Any:
        return self.section


def _plain_encoding(document: Any) -> tuple[dict[str, Any], bytes]:
    value = document.model_dump(mode="json")
    return value, rfc8785.dumps({**value, "now_ns": float(value["now_ns"])})


def test_kept_sections_are_encoded_once_and_as_rfc8785_encodes_them() -> None:
    provenance = _Kept(ProvenanceSection(status=SectionStatus.MISSING, message="none"))
    scans = _Kept(VulnerabilitiesSection(status=SectionStatus.OK, counts={"high": 1}))
    providers = FactProviders(
        provenance=provenance,
        vulnerabilities=scans,
        slo=NoSloConfigured(),
        approvals=NoApprovalStore(),
    )
    pipeline = DecisionPipeline(engine=FakeEngine(lambda doc: PolicyResult()), providers=providers)
    request = parse_request(REQUEST)
    steps = [
        ("first", None, None),
        ("the same objects", None, None),
        (
            "equal objects",
            ProvenanceSection(status=SectionStatus.MISSING, message="none"),
            VulnerabilitiesSection(status=SectionStatus.OK, counts={"high": 1}),
        ),
        (
            "other content",
            ProvenanceSection(status=SectionStatus.MISSING, message="other"),
            VulnerabilitiesSection(status=SectionStatus.OK, counts={"high": 1, "low": 2}),
        ),
    ]
    previous: dict[str, Any] | None = None
    for i, (step, new_provenance, new_scans) in enumerate(steps):
        provenance.section = new_provenance or provenance.section
        scans.section = new_scans or scans.section
        document = pipeline.build_input(request, now_ns=NOW + i * 4096, adapter="api")
        encoded = pipeline.encode_input(document)
        value, canonical = _plain_encoding(document)
        assert encoded == value, step
        assert list(encoded) == list(value), step  # the model's member order
        assert encoded.canonical == canonical, step
        if previous is not None:
            shared = step == "the same objects"
            assert (encoded["provenance"] is previous["provenance"]) is shared, step
            assert (encoded["vulnerabilities"] is previous["vulnerabilities"]) is shared, step
            # No SLO configured, no approvals: one frozen object each, encoded once.
            assert encoded["slo"] is previous["slo"], step
            assert encoded["approvals"] is previous["approvals"], step
        previous = encoded


def test_an_admission_section_is_encoded_member_by_member_as_rfc8785_encodes_it() -> None:
    # Only each prior decision's age changes from one review to the next; the section's
    # encoding is put together from cached members and must equal rfc8785's of the whole.
    pipeline = _pipeline(FakeEngine(lambda doc: PolicyResult()))
    request = parse_request(REQUEST)
    for i, age in enumerate([0.017648, 1.5, None, 1e-7, 604800.0, 0.017648]):
        images = [
            ImageFact(
                container="app",
                kind="container",
                image="ghcr.io/acme/payments@sha256:" + "b" * 64,
                digest="sha256:" + "b" * 64,
                prior_decision_id=f"01a21dcb-ffc6-7d24-abdb-7d107237{i:04d}",
                prior_decision_age_s=age,
            ),
            ImageFact(container="sidecar", kind="init_container", image="busybox:1.36"),
        ]
        section = AdmissionSection(
            operation="CREATE",
            kind="Pod",
            namespace="payments",
            name="payments-7f9c",
            labels={"app": "payments", "\U0001f600": "x", "\uffff": "y"},
            images=images[: 1 + i % 2] if i < 5 else [],
            max_prior_age_s=604800.0,
        )
        document = _pipeline(FakeEngine(lambda doc: PolicyResult())).build_input(
            request, now_ns=NOW + i * 4096, adapter="admission", admission=section
        )
        for encoder in (pipeline, _pipeline(FakeEngine(lambda doc: PolicyResult()))):
            encoded = encoder.encode_input(document)  # a warm cache, then a cold one
            value, canonical = _plain_encoding(document)
            assert encoded == value and encoded.canonical == canonical, (i, age)
