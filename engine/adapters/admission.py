"""The Kubernetes admission adapter: ``admission.k8s.io/v1`` AdmissionReview in and out.

"Verify once, reuse at admission": a CI ``check`` verified the evidence and left a signed
``allow`` in the decision log. At admission nothing is verified again and no registry is
called: for each pinned image the adapter makes one indexed log lookup for a recent signed
``allow`` for that digest and environment, records what it found as facts
(:class:`AdmissionSection`) and lets ``releasegate.admission`` decide. Every admission is a
logged decision.

Identity of the admission decision (documented in ``examples/k8s/README.md``):

* environment: the ``{environment}`` path segment (``POST /v1/admission/{environment}``,
  one webhook per environment, selected by a namespace label that only cluster admins
  set), else the namespace → environment mapping of :class:`AdmissionConfig`, else its
  default, else the namespace name. Never a label on the object: the deployer controls
  those, and could pick an easier environment.
* release id ``<namespace>/<Kind>/<name>``; service from the label
  ``app.kubernetes.io/name`` (object, then pod template), else ``app``, else the name;
  stage ``deploy``; ``requested_by`` the Kubernetes user.
* artifact: the first pinned image (uri and digest); when no image is pinned, a synthetic
  ``sha256`` over the sorted image references (it names this set of images in the log).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import anyio

from engine.adapters import admission_objects as objects
from engine.decision import DecisionPipeline
from engine.errors import FieldError, InputError, SignatureError
from engine.models.approvals import ApprovalsSection
from engine.models.common import SectionStatus, Stage, Verdict
from engine.models.decision import Decision
from engine.models.inputs import (
    AdmissionSection,
    ArtifactFacts,
    ImageFact,
    InputDocumentV1,
    ReleaseFacts,
)
from engine.models.provenance import ProvenanceSection
from engine.models.slo import SloSection
from engine.models.vulnerabilities import VulnerabilitiesSection

_logger = logging.getLogger(__name__)

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"
DECISION_ID_ANNOTATION = "decision-id"
"""``auditAnnotations`` key; the API server prefixes it with the webhook name, giving e.g.
``admission.releasegate.dev/decision-id`` (keys must be unprefixed qualified names)."""
VERDICT_ANNOTATION = "verdict"
MAX_WARNING_CHARS = 256
_NOT_USED = "not used at admission: reused from the prior decision"
# Frozen, so one object each serves every review (and the pipeline encodes each once).
_NO_PROVENANCE = ProvenanceSection(status=SectionStatus.MISSING, message=_NOT_USED)
_NO_VULNERABILITIES = VulnerabilitiesSection(status=SectionStatus.MISSING, message=_NOT_USED)
_NO_SLO = SloSection(status=SectionStatus.MISSING, message=_NOT_USED)
_NO_APPROVALS = ApprovalsSection(status=SectionStatus.MISSING, message=_NOT_USED)


class PriorDecisions(Protocol):
    """The decision log, as far as admission reads it (``DecisionLog`` implements it)."""

    def latest_allow_for(
        self, artifact_digest: str, environment: str, max_age_s: float, now: datetime
    ) -> Decision | None:
        """The newest signed, non-dry-run CI ``allow`` for digest and environment."""
        ...


@dataclass(frozen=True)
class AdmissionConfig:
    """How the adapter maps namespaces to environments and how old a prior allow may be."""

    max_prior_age_s: float = 7 * 24 * 3600
    environments: Mapping[str, str] = field(default_factory=dict)
    """Namespace → environment."""
    default_environment: str | None = None
    """Environment of unmapped namespaces (None: the namespace name itself)."""

    def environment_for(self, namespace: str | None, path_environment: str | None) -> str:
        """The environment an admission is judged in (see the module docstring)."""
        if path_environment:
            return path_environment
        ns = namespace or "default"
        return self.environments.get(ns) or self.default_environment or ns


@dataclass(frozen=True)
class ParsedReview:
    """The parts of an AdmissionReview request the adapter uses."""

    uid: str
    group: str
    kind: str
    operation: str
    namespace: str | None
    name: str
    dry_run: bool
    username: str | None
    obj: Mapping[str, Any] | None


def _bad(loc: str, message: str) -> InputError:
    return InputError(f"malformed AdmissionReview: {loc}: {message}", [FieldError(loc, message)])


def peek_uid(body: object) -> str | None:
    """``request.uid`` when it can be read, so even a malformed review gets an answer."""
    if isinstance(body, Mapping):
        request = body.get("request")
        if isinstance(request, Mapping):
            uid = request.get("uid")
            if isinstance(uid, str) and uid:
                return uid
    return None


def _opt_str(request: Mapping[str, Any], key: str) -> str | None:
    value = request.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _bad(f"request.{key}", "must be a string")
    return value


def parse_review(body: object) -> ParsedReview:
    """Check the envelope of an ``admission.k8s.io/v1`` AdmissionReview; raise ``InputError``."""
    if not isinstance(body, Mapping):
        raise _bad("body", "must be a JSON object")
    if body.get("apiVersion") != API_VERSION or body.get("kind") != KIND:
        raise _bad("apiVersion", f"only {API_VERSION} {KIND} is supported "
                   "(set admissionReviewVersions: [v1])")  # fmt: skip
    request = body.get("request")
    if not isinstance(request, Mapping):
        raise _bad("request", "must be an object")
    uid = peek_uid(body)
    if uid is None:
        raise _bad("request.uid", "must be a non-empty string")
    gvk = request.get("kind")
    if not isinstance(gvk, Mapping) or not isinstance(gvk.get("kind"), str) or not gvk["kind"]:
        raise _bad("request.kind", "must be an object with a non-empty kind")
    group = gvk.get("group", "")
    if not isinstance(group, str):
        raise _bad("request.kind.group", "must be a string")
    operation = request.get("operation")
    if not isinstance(operation, str) or operation not in {"CREATE", "UPDATE", "DELETE", "CONNECT"}:
        raise _bad("request.operation", "must be CREATE, UPDATE, DELETE or CONNECT")
    dry_run = request.get("dryRun", False)
    if not isinstance(dry_run, bool):
        raise _bad("request.dryRun", "must be a boolean")
    obj = request.get("object")
    if obj is not None and not isinstance(obj, Mapping):
        raise _bad("request.object", "must be an object")
    if obj is None and operation in {"CREATE", "UPDATE"}:
        raise _bad("request.object", f"missing for a {operation}")
    user = request.get("userInfo")
    username = user.get("username") if isinstance(user, Mapping) else None
    meta = obj.get("metadata") if obj is not None else None
    meta = meta if isinstance(meta, Mapping) else {}
    name = _opt_str(request, "name") or meta.get("name") or ""
    if not name and isinstance(meta.get("generateName"), str):
        name = meta["generateName"] + "<generated>"
    return ParsedReview(
        uid=uid,
        group=group,
        kind=gvk["kind"],
        operation=str(operation),
        namespace=_opt_str(request, "namespace"),
        name=str(name) or "<unnamed>",
        dry_run=dry_run,
        username=username if isinstance(username, str) and username else None,
        obj=obj,
    )


def _service(review: ParsedReview, labels: Mapping[str, str], tmpl: Mapping[str, str]) -> str:
    for key in ("app.kubernetes.io/name", "app"):
        for source in (labels, tmpl):
            if source.get(key):
                return source[key]
    return review.name


def _artifact(images: list[ImageFact]) -> ArtifactFacts:
    for img in images:
        if img.digest is not None:
            return ArtifactFacts(uri=objects.image_repository(img.image) or None, digest=img.digest)
    listing = json.dumps(sorted(img.image for img in images)).encode()
    return ArtifactFacts(uri=None, digest="sha256:" + hashlib.sha256(listing).hexdigest())


def _age_s(decision: Decision, now: datetime) -> float:
    # ``format_timestamp``'s RFC 3339 (``...:00.123456Z``), which ``fromisoformat`` reads
    # as an aware UTC time since Python 3.11, 25 times faster than ``strptime``.
    stamp = datetime.fromisoformat(decision.timestamp)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return max(0.0, (now - stamp).total_seconds())


class AdmissionController:
    """Turns AdmissionReviews into logged decisions and AdmissionReview responses."""

    def __init__(
        self,
        *,
        pipeline: DecisionPipeline,
        priors: PriorDecisions,
        config: AdmissionConfig,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.pipeline = pipeline
        self.priors = priors
        self.config = config
        self._clock = clock

    def _with_priors(self, images: list[ImageFact], env: str, now: datetime) -> list[ImageFact]:
        found: dict[str, Decision | None] = {}
        out = []
        for img in images:
            if img.digest is None:
                out.append(img)
                continue
            if img.digest not in found:
                try:
                    found[img.digest] = self.priors.latest_allow_for(
                        img.digest, env, self.config.max_prior_age_s, now
                    )
                except SignatureError as exc:
                    # A record that fails its signature is no prior decision at all.
                    _logger.error("prior decision for %s does not verify: %s", img.digest, exc)
                    found[img.digest] = None
            prior = found[img.digest]
            if prior is not None:
                img = img.model_copy(
                    update={
                        "prior_decision_id": prior.decision_id,
                        "prior_decision_age_s": _age_s(prior, now),
                    }
                )
            out.append(img)
        return out

    def build_document(
        self, review: ParsedReview, *, caller: str | None = None, environment: str | None = None
    ) -> InputDocumentV1:
        """The input document of one admission (facts only; no evidence is re-verified)."""
        now_ns = self._clock()
        now = datetime.fromtimestamp(now_ns / 1e9, tz=UTC)
        env = self.config.environment_for(review.namespace, environment)
        obj = review.obj or {}
        known = objects.supported(review.group, review.kind)
        images: list[ImageFact] = []
        if known and review.obj is not None:
            spec = objects.pod_spec(review.group, review.kind, review.obj)
            if spec is not None:
                path = ".".join(objects.POD_SPEC_PATHS[(review.group, review.kind)])
                images = objects.images_in(spec, loc=f"request.object.{path}")
        labels = objects.labels_of(obj)
        tmpl = objects.template_labels(review.group, review.kind, obj) if known else {}
        images = self._with_priors(images, env, now)
        release = ReleaseFacts(
            id=f"{review.namespace or '-'}/{review.kind}/{review.name}",
            service=_service(review, labels, tmpl),
            environment=env,
            stage=Stage.DEPLOY,
            version=labels.get("app.kubernetes.io/version")
            or tmpl.get("app.kubernetes.io/version"),
            requested_by=review.username,
            caller=caller,
        )
        section = AdmissionSection(
            operation=review.operation,
            kind=review.kind,
            group=review.group,
            supported=known,
            namespace=review.namespace,
            name=review.name,
            labels=labels,
            dry_run=review.dry_run,
            images=images,
            max_prior_age_s=self.config.max_prior_age_s,
        )
        return InputDocumentV1(
            now_ns=now_ns,
            adapter="admission",
            release=release,
            artifact=_artifact(images),
            provenance=_NO_PROVENANCE,
            vulnerabilities=_NO_VULNERABILITIES,
            slo=_NO_SLO,
            approvals=_NO_APPROVALS,
            admission=section,
        )

    def decide(
        self, review: ParsedReview, *, caller: str | None, environment: str | None = None
    ) -> Decision:
        """Decide (and log) one admission."""
        document = self.build_document(review, caller=caller, environment=environment)
        return self.pipeline.decide_document(
            document, dry_run=review.dry_run, caller=caller, adapter="admission"
        )

    def review(
        self, body: object, *, caller: str | None, environment: str | None = None
    ) -> tuple[dict[str, Any], Decision | None]:
        """Answer one AdmissionReview: the response body and the logged decision.

        A malformed review whose uid can be read is answered ``allowed: false`` (code 400)
        without a decision; one without a readable uid raises :class:`InputError`.
        """
        uid = peek_uid(body)
        try:
            parsed = parse_review(body)
            decision = self.decide(parsed, caller=caller, environment=environment)
        except InputError as exc:
            if uid is None:
                raise
            return malformed_response(uid, exc), None
        return admission_response(parsed.uid, decision, subject=_subject(parsed)), decision

    async def review_async(
        self,
        body: object,
        *,
        caller: str | None,
        environment: str | None = None,
        priors_may_block: bool = True,
    ) -> tuple[dict[str, Any], Decision | None]:
        """:meth:`review` on an event loop, for the service: the prior decisions are read on
        the loop unless reading them may wait on a database server (``priors_may_block``),
        OPA and the log's commit are awaited."""
        uid = peek_uid(body)
        try:
            parsed = parse_review(body)
            build = functools.partial(
                self.build_document, parsed, caller=caller, environment=environment
            )
            document = await anyio.to_thread.run_sync(build) if priors_may_block else build()
            decision = await self.pipeline.decide_document_async(
                document, dry_run=parsed.dry_run, caller=caller, adapter="admission"
            )
        except InputError as exc:
            if uid is None:
                raise
            return malformed_response(uid, exc), None
        return admission_response(parsed.uid, decision, subject=_subject(parsed)), decision


def _subject(review: ParsedReview) -> str:
    return f"{review.kind} {review.namespace or '-'}/{review.name}"


def _envelope(response: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": KIND, "response": response}


def admission_response(uid: str, decision: Decision, *, subject: str = "") -> dict[str, Any]:
    """The AdmissionReview response of contract §7: allowed only for ``allow``."""
    response: dict[str, Any] = {
        "uid": uid,
        "allowed": decision.verdict is Verdict.ALLOW,
        "auditAnnotations": {
            DECISION_ID_ANNOTATION: decision.decision_id,
            VERDICT_ANNOTATION: decision.verdict.value,
        },
    }
    if decision.verdict is not Verdict.ALLOW:
        reasons = "; ".join(f"{r.code}: {r.message}" for r in decision.reasons)
        target = f" {subject}" if subject else ""
        response["status"] = {
            "code": 403,
            "reason": "Forbidden",
            "message": f"releasegate {decision.verdict.value}{target} "
            f"(decision {decision.decision_id}): {reasons}",
        }
    if decision.warnings:
        response["warnings"] = [
            f"releasegate {w.code}: {w.message}"[:MAX_WARNING_CHARS] for w in decision.warnings
        ]
    return _envelope(response)


def malformed_response(uid: str, error: InputError) -> dict[str, Any]:
    """``allowed: false`` for a review that cannot be decided (fail closed)."""
    return _envelope(
        {
            "uid": uid,
            "allowed": False,
            "status": {"code": 400, "reason": "BadRequest", "message": f"releasegate: {error}"},
        }
    )


__all__ = [
    "API_VERSION",
    "AdmissionConfig",
    "AdmissionController",
    "ParsedReview",
    "PriorDecisions",
    "admission_response",
    "malformed_response",
    "parse_review",
    "peek_uid",
]
