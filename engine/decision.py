"""The decision pipeline: request -> facts -> input document -> OPA -> Decision -> log.

Fail closed: any failure to evaluate (engine down, timeout, undefined or malformed result)
becomes a ``pause`` decision with reason ``engine_unavailable``. Python never picks a verdict
of its own; it only refuses policy output that contradicts itself.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import anyio
import uuid6
from pydantic import BaseModel

from engine.engines.base import EncodedInput, PolicyEngine
from engine.errors import PolicyError, PolicyEvalError
from engine.inputs.base import FactProviders
from engine.log.canonical import CanonicalCache, canonical_bytes, join_elements
from engine.models.common import Verdict, quantize_ns
from engine.models.decision import Decision, PolicyResult, Reason
from engine.models.inputs import (
    AdmissionSection,
    ArtifactFacts,
    ImageFact,
    InputDocumentV1,
    ReleaseFacts,
)
from engine.models.request import DecisionRequestV1

_logger = logging.getLogger(__name__)

Adapter = str


class DecisionRecorder(Protocol):
    """Durably appends a decision (signed) before it is returned."""

    def append(
        self,
        decision: Decision,
        *,
        input_document: dict[str, Any],
        caller: str | None,
        adapter: str,
        input_canonical: bytes | None = None,
    ) -> Decision:
        """Store the decision; return it with its log position and signature filled in.

        ``input_canonical`` is the RFC 8785 encoding of ``input_document`` when the caller
        already made it (for ``input_digest``), so the log need not encode it again.
        """
        ...


def input_digest(document: Mapping[str, Any]) -> str:
    """``sha256:`` of the RFC 8785 canonical JSON of the input document."""
    return digest_of_canonical(canonical_bytes(dict(document)))


def digest_of_canonical(canonical: bytes) -> str:
    """``sha256:`` of already canonical bytes."""
    return "sha256:" + hashlib.sha256(canonical).hexdigest()


def format_timestamp(now_ns: int) -> str:
    """RFC 3339, microseconds, ``Z``: ``2026-11-26T12:00:00.123456Z``."""
    return datetime.fromtimestamp(now_ns / 1e9, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_decision_id() -> str:
    """A time-ordered UUIDv7."""
    return str(uuid6.uuid7())


def engine_unavailable(message: str) -> PolicyResult:
    """The fail-closed result for any evaluation failure."""
    return PolicyResult(
        verdict=Verdict.PAUSE,
        reasons=[
            Reason(
                code="engine_unavailable",
                verdict=Verdict.PAUSE,
                policy="releasegate",
                message=f"the policy engine could not decide: {message}",
            )
        ],
    )


def _check_consistent(result: PolicyResult) -> PolicyResult:
    """Refuse a result whose verdict is not the most severe verdict of its reasons."""
    worst = max(
        (r.verdict for r in result.reasons), key=lambda v: v.severity, default=Verdict.ALLOW
    )
    if worst is not result.verdict:
        raise PolicyEvalError(
            f"malformed policy output: verdict {result.verdict.value} with reasons that imply "
            f"{worst.value}"
        )
    return result


def evaluate(engine: PolicyEngine, document: Mapping[str, Any]) -> PolicyResult:
    """Evaluate the document, mapping every engine failure to ``engine_unavailable``."""
    try:
        return _check_consistent(engine.evaluate(document))
    except PolicyError as exc:
        _logger.error("policy evaluation failed: %s", exc)
        return engine_unavailable(str(exc))


async def evaluate_on_loop(engine: PolicyEngine, document: Mapping[str, Any]) -> PolicyResult:
    """``engine.evaluate`` awaited: the engine's own ``evaluate_async`` when it has one (OPA
    over asyncio), else its blocking ``evaluate`` in a worker thread. Raises like it."""
    native = getattr(engine, "evaluate_async", None)
    if native is not None:
        result: PolicyResult = await native(document)
        return result
    return await anyio.to_thread.run_sync(engine.evaluate, document)


async def evaluate_async(engine: PolicyEngine, document: Mapping[str, Any]) -> PolicyResult:
    """:func:`evaluate` from an event loop (same failure mapping)."""
    try:
        return _check_consistent(await evaluate_on_loop(engine, document))
    except PolicyError as exc:
        _logger.error("policy evaluation failed: %s", exc)
        return engine_unavailable(str(exc))


async def record_on_loop(
    recorder: DecisionRecorder,
    decision: Decision,
    *,
    input_document: dict[str, Any],
    caller: str | None,
    adapter: str,
    input_canonical: bytes | None = None,
) -> Decision:
    """``recorder.append`` awaited: its ``append_async`` when it has one, else in a thread."""
    native = getattr(recorder, "append_async", None)
    if native is not None:
        recorded: Decision = await native(
            decision,
            input_document=input_document,
            caller=caller,
            adapter=adapter,
            input_canonical=input_canonical,
        )
        return recorded
    return await anyio.to_thread.run_sync(
        functools.partial(
            recorder.append,
            decision,
            input_document=input_document,
            caller=caller,
            adapter=adapter,
            input_canonical=input_canonical,
        )
    )


class DecisionPipeline:
    """Gathers facts, evaluates them with the engine and records the decision."""

    def __init__(
        self,
        *,
        engine: PolicyEngine,
        providers: FactProviders,
        recorder: DecisionRecorder | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.engine = engine
        self.providers = providers
        self.recorder = recorder
        self._clock = clock
        self._canonical = CanonicalCache()
        self._sections = SectionEncodings(self._canonical)

    def build_input(
        self,
        request: DecisionRequestV1,
        *,
        now_ns: int,
        caller: str | None = None,
        adapter: Adapter = "cli",
        admission: AdmissionSection | None = None,
    ) -> InputDocumentV1:
        """Turn a request into the input document: verify and normalize every section."""
        release = ReleaseFacts(**request.release.model_dump(), caller=caller)
        artifact = ArtifactFacts(**request.artifact.model_dump())
        evidence = request.evidence
        return InputDocumentV1(
            now_ns=now_ns,
            adapter=adapter,  # type: ignore[arg-type]
            release=release,
            artifact=artifact,
            provenance=self.providers.provenance.collect(
                evidence.attestations, artifact_digest=artifact.digest
            ),
            vulnerabilities=self.providers.vulnerabilities.collect(
                evidence.scans, artifact_digest=artifact.digest
            ),
            slo=self.providers.slo.collect(release, now_ns=now_ns),
            approvals=self.providers.approvals.collect(release, artifact),
            admission=admission,
        )

    def decide(
        self,
        request: DecisionRequestV1,
        *,
        caller: str | None = None,
        adapter: Adapter = "cli",
        admission: AdmissionSection | None = None,
    ) -> Decision:
        """Decide one request and record it (when a recorder is configured)."""
        now_ns = quantize_ns(self._clock())
        document = self.build_input(
            request, now_ns=now_ns, caller=caller, adapter=adapter, admission=admission
        )
        return self.decide_document(
            document, dry_run=request.dry_run, caller=caller, adapter=adapter
        )

    async def decide_async(
        self,
        request: DecisionRequestV1,
        *,
        caller: str | None = None,
        adapter: Adapter = "cli",
        admission: AdmissionSection | None = None,
    ) -> Decision:
        """:meth:`decide` on an event loop, for the service: the same input document, the
        same engine and the same record, without a worker thread per decision.

        Facts are gathered on the loop when no provider may wait on the network (the
        default: verification, scan parsing and the SQLite approval store only compute), in
        a worker thread otherwise (Prometheus, a database server); OPA is awaited over
        asyncio and the log's commit is awaited, not waited for.
        """
        now_ns = quantize_ns(self._clock())
        build = functools.partial(
            self.build_input,
            request,
            now_ns=now_ns,
            caller=caller,
            adapter=adapter,
            admission=admission,
        )
        if self.providers.may_block():
            document = await anyio.to_thread.run_sync(build)
        else:
            document = build()
        return await self.decide_document_async(
            document, dry_run=request.dry_run, caller=caller, adapter=adapter
        )

    async def decide_document_async(
        self,
        document: InputDocumentV1,
        *,
        dry_run: bool = False,
        caller: str | None = None,
        adapter: Adapter = "cli",
    ) -> Decision:
        """:meth:`decide_document` on an event loop (OPA and the commit awaited)."""
        doc = self.encode_input(document)
        result = await evaluate_async(self.engine, doc)
        decision = self._decision(document, result, doc.canonical, dry_run=dry_run)
        if self.recorder is None:
            return decision
        return await record_on_loop(
            self.recorder,
            decision,
            input_document=doc,
            caller=caller,
            adapter=adapter,
            input_canonical=doc.canonical,
        )

    def decide_document(
        self,
        document: InputDocumentV1,
        *,
        dry_run: bool = False,
        caller: str | None = None,
        adapter: Adapter = "cli",
    ) -> Decision:
        """Evaluate a finished input document, build the Decision, record it."""
        doc = self.encode_input(document)
        result = evaluate(self.engine, doc)
        decision = self._decision(document, result, doc.canonical, dry_run=dry_run)
        if self.recorder is None:
            return decision
        # No verdict without a record: a StoreError propagates and no decision is returned.
        return self.recorder.append(
            decision,
            input_document=doc,
            caller=caller,
            adapter=adapter,
            input_canonical=doc.canonical,
        )

    def _decision(
        self,
        document: InputDocumentV1,
        result: PolicyResult,
        canonical: bytes,
        *,
        dry_run: bool,
    ) -> Decision:
        return Decision(
            decision_id=new_decision_id(),
            timestamp=format_timestamp(document.now_ns),
            verdict=result.verdict,
            reasons=result.reasons,
            warnings=result.warnings,
            release=document.release.model_dump(mode="json", exclude={"caller"}, exclude_none=True),
            artifact=document.artifact.model_dump(mode="json", exclude_none=True),
            dry_run=dry_run,
            policy=result.evaluated_policy or self.engine.policy,
            engine=self.engine.info,
            input_digest=digest_of_canonical(canonical),
        )

    def encode_input(self, document: InputDocumentV1) -> EncodedInput:
        """The input document as JSON values with its RFC 8785 bytes: what OPA is sent, what
        ``input_digest`` names and what the record stores.

        Every section but the clock goes through the pipeline's :class:`CanonicalCache`:
        the provenance and vulnerability facts of an artifact repeat across its decisions.
        The sections providers keep as objects are dumped and encoded once per object
        (:class:`SectionEncodings`); an admission section member by member.
        """
        doc = document.model_dump(mode="json", exclude=_SHARED_EXCLUDE)
        known: dict[str, bytes] = {}
        for name in _SHARED_SECTIONS:
            doc[name], known[name] = self._sections.encode(getattr(document, name))
        doc = {name: doc[name] for name in _FIELD_ORDER}
        admission = doc["admission"]
        if isinstance(admission, dict):
            known["admission"] = self._encode_admission(admission)
        return EncodedInput(
            doc, self._canonical.encode_object(doc, cached=_CACHED_SECTIONS, known=known)
        )

    def _encode_admission(self, section: dict[str, Any]) -> bytes:
        """The admission section's RFC 8785 bytes, member by member.

        Its images carry each prior decision's age, which changes with every review, so the
        section as a whole is never the same twice (a miss of the :class:`CanonicalCache`
        that encoded all of it with ``rfc8785``, 150 µs here, and took a cache entry for
        nothing); everything else in it (the kinds, names, labels and decision ids) repeats
        and comes from the caches. Only the ages are encoded afresh; every byte still comes
        from ``rfc8785`` (:func:`join_members`, :func:`join_elements` add the punctuation).
        """
        images = section.get("images")
        if not isinstance(images, list) or not all(isinstance(i, dict) for i in images):
            return self._canonical.encode(section)
        encoded = join_elements(
            [self._canonical.encode_object(image, cached=_IMAGE_CACHED) for image in images]
        )
        return self._canonical.encode_object(
            section, cached=_ADMISSION_CACHED, known={"images": encoded}
        )


class SectionEncodings:
    """The JSON value and RFC 8785 bytes of section objects seen recently, by identity.

    The provenance and vulnerability sections of a warm request are the same objects from
    one decision to the next (the providers keep them: :class:`SectionCache`,
    :class:`engine.inputs.providers.ScanReports`), as are the sections that say nothing
    changed (no SLO configured, no approvals yet, admission's unused ones), and the models
    are frozen; so their ``model_dump`` and their encoding (through the
    :class:`CanonicalCache`, every byte from ``rfc8785``) are made once per object, not once
    per decision. A section made afresh (an SLO read from Prometheus, a release's approvals)
    is encoded as before and kept as the most recent entry; the least recently used go
    first, so the kept objects that every decision uses stay. An entry holds its object,
    so no id is reused while it is kept. The JSON values are shared by every decision that
    uses them: nothing may change them (the log masks a deep copy). Thread-safe.
    """

    def __init__(self, canonical: CanonicalCache, max_entries: int = 64) -> None:
        self._canonical = canonical
        self._max_entries = max_entries
        self._entries: OrderedDict[int, tuple[BaseModel, Any, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def encode(self, section: BaseModel) -> tuple[Any, bytes]:
        """``(section.model_dump(mode="json"), its RFC 8785 bytes)``."""
        key = id(section)
        with self._lock:
            found = self._entries.get(key)
            if found is not None and found[0] is section:
                self._entries.move_to_end(key)
                return found[1], found[2]
        value = section.model_dump(mode="json")
        encoded = self._canonical.encode(value)
        with self._lock:
            self._entries[key] = (section, value, encoded)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
        return value, encoded


_CACHED_SECTIONS = frozenset(InputDocumentV1.model_fields) - {"now_ns"}
_SHARED_SECTIONS = ("provenance", "vulnerabilities", "slo", "approvals")
_SHARED_EXCLUDE: set[str] = set(_SHARED_SECTIONS)  # model_dump takes a set (never changed)
_FIELD_ORDER = tuple(InputDocumentV1.model_fields)
_ADMISSION_CACHED = frozenset(AdmissionSection.model_fields) - {"images"}
_IMAGE_CACHED = frozenset(ImageFact.model_fields) - {"prior_decision_age_s"}
