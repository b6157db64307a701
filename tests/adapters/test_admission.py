"""The admission adapter through the real pipeline: real OPA, real signed log, real
AdmissionReview shapes for every kind, CREATE and UPDATE, dryRun, malformed reviews."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from typing import Any

import pytest

from engine.adapters.admission import AdmissionConfig, AdmissionController, parse_review
from engine.decision import DecisionPipeline
from engine.errors import InputError
from engine.log import DecisionLog
from engine.models.common import Verdict
from engine.models.decision import Decision
from engine.models.parse import parse_request
from tests.adapters.conftest import DIGEST_A, DIGEST_B, WORKLOADS, pod_spec, review

pytestmark = pytest.mark.opa

DEV = AdmissionConfig(max_prior_age_s=3600, environments={"payments": "dev"})


def ci_allow(
    pipeline: DecisionPipeline, digest: str = DIGEST_A, *, env: str = "dev", dry_run: bool = False
) -> Decision:
    """What a CI `check` leaves in the log (dev needs no provenance or scans)."""
    request = parse_request({
        "release": {"id": "payments-1.4.2", "service": "payments", "environment": env,
                    "stage": "deploy"},
        "artifact": {"uri": "ghcr.io/acme/payments", "digest": digest},
        "dry_run": dry_run,
    })  # fmt: skip
    decision = pipeline.decide(request, caller="ci-bot", adapter="api")
    assert decision.verdict is Verdict.ALLOW, decision.reasons
    return decision


def controller(
    pipeline: DecisionPipeline, log: DecisionLog, config: AdmissionConfig = DEV, **kw: Any
) -> AdmissionController:
    return AdmissionController(pipeline=pipeline, priors=log, config=config, **kw)


@pytest.mark.parametrize("operation", ["CREATE", "UPDATE"])
@pytest.mark.parametrize("kind", sorted(WORKLOADS))
def test_every_kind_with_a_prior_allow_is_admitted(
    kind: str, operation: str, pipeline: DecisionPipeline, decision_log: DecisionLog
) -> None:
    prior = ci_allow(pipeline)
    body = review(kind, operation=operation)
    answer, decision = controller(pipeline, decision_log).review(body, caller="kube-apiserver")
    assert decision is not None
    assert answer["apiVersion"] == "admission.k8s.io/v1"
    assert answer["kind"] == "AdmissionReview"
    response = answer["response"]
    assert response["uid"] == body["request"]["uid"]
    assert response["allowed"] is True, response
    assert "status" not in response
    assert response["auditAnnotations"]["decision-id"] == decision.decision_id
    record = decision_log.get(decision.decision_id)
    assert record is not None  # every admission is a logged decision
    facts = record.input["admission"]
    assert facts["kind"] == kind and facts["operation"] == operation
    assert [i["prior_decision_id"] for i in facts["images"]] == [prior.decision_id]
    assert decision.release["id"] == f"payments/{kind}/payments"
    assert decision.release["environment"] == "dev"
    assert decision.artifact == {"uri": "ghcr.io/acme/payments", "digest": DIGEST_A}


@pytest.mark.parametrize("kind", sorted(WORKLOADS))
def test_every_container_kind_is_judged(
    kind: str, pipeline: DecisionPipeline, decision_log: DecisionLog
) -> None:
    ci_allow(pipeline)
    spec = pod_spec(f"ghcr.io/acme/payments@{DIGEST_A}", init="busybox:1.36",
                    ephemeral=f"ghcr.io/acme/debug@{DIGEST_B}")  # fmt: skip
    answer, decision = controller(pipeline, decision_log).review(review(kind, spec), caller="k")
    assert decision is not None and decision.verdict is Verdict.ROLLBACK
    assert {r.code for r in decision.reasons} == {"image_not_pinned", "no_prior_decision"}
    messages = " ".join(r.message for r in decision.reasons)
    assert "busybox:1.36" in messages and DIGEST_B in messages
    status = answer["response"]["status"]
    assert answer["response"]["allowed"] is False and status["code"] == 403
    assert "image_not_pinned" in status["message"] and "no_prior_decision" in status["message"]


def test_pod_with_another_digest_is_denied(
    pipeline: DecisionPipeline, decision_log: DecisionLog
) -> None:
    ci_allow(pipeline, DIGEST_A)
    ctl = controller(pipeline, decision_log)
    ok, _ = ctl.review(review("Pod"), caller="k")
    assert ok["response"]["allowed"] is True
    other, decision = ctl.review(
        review("Pod", image=f"ghcr.io/acme/payments@{DIGEST_B}"), caller="k"
    )
    assert decision is not None and decision.verdict is Verdict.PAUSE
    assert [r.code for r in decision.reasons] == ["no_prior_decision"]
    assert other["response"]["allowed"] is False
    assert other["response"]["status"]["code"] == 403
    assert other["response"]["auditAnnotations"]["verdict"] == "pause"


def test_tag_is_denied_as_rollback(pipeline: DecisionPipeline, decision_log: DecisionLog) -> None:
    answer, decision = controller(pipeline, decision_log).review(
        review("Deployment", image="ghcr.io/acme/payments:1.4.2"), caller="k"
    )
    assert decision is not None and decision.verdict is Verdict.ROLLBACK
    assert [r.code for r in decision.reasons] == ["image_not_pinned"]
    assert answer["response"]["status"]["code"] == 403
    # No digest at all: the artifact of the decision is a synthetic digest over the images.
    assert decision.artifact["digest"].startswith("sha256:")
    assert decision.artifact["digest"] not in (DIGEST_A, DIGEST_B)


def test_prior_allow_must_match_the_environment(
    pipeline: DecisionPipeline, decision_log: DecisionLog
) -> None:
    ci_allow(pipeline, env="dev")
    ctl = controller(pipeline, decision_log)
    _, decision = ctl.review(review("Pod"), caller="k", environment="prod")
    assert decision is not None and [r.code for r in decision.reasons] == ["no_prior_decision"]
    assert decision.release["environment"] == "prod"
    _, decision = ctl.review(review("Pod"), caller="k", environment="dev")
    assert decision is not None and decision.verdict is Verdict.ALLOW


def test_unmapped_namespace_is_its_own_environment(
    pipeline: DecisionPipeline, decision_log: DecisionLog
) -> None:
    ci_allow(pipeline, env="dev")
    ctl = controller(pipeline, decision_log, AdmissionConfig())
    _, decision = ctl.review(review("Pod", namespace="team-a"), caller="k")
    assert decision is not None and decision.release["environment"] == "team-a"
    assert decision.verdict is Verdict.PAUSE
    ctl = controller(pipeline, decision_log, AdmissionConfig(default_environment="dev"))
    _, decision = ctl.review(review("Pod", namespace="team-a"), caller="k")
    assert decision is not None and decision.verdict is Verdict.ALLOW


def test_stale_prior_allow_does_not_count(
    pipeline: DecisionPipeline, decision_log: DecisionLog
) -> None:
    ci_allow(pipeline)
    later = time.time_ns() + 120 * 10**9
    config = AdmissionConfig(max_prior_age_s=60, environments={"payments": "dev"})
    ctl = controller(pipeline, decision_log, config, clock=lambda: later)
    _, decision = ctl.review(review("Pod"), caller="k")
    assert decision is not None and [r.code for r in decision.reasons] == ["no_prior_decision"]


def test_the_prior_allows_age_is_exact_to_the_microsecond(
    pipeline: DecisionPipeline, decision_log: DecisionLog
) -> None:
    prior = ci_allow(pipeline)
    stamp = datetime.strptime(prior.timestamp, "%Y-%m-%dT%H:%M:%S.%fZ")
    epoch_us = round((stamp - datetime(1970, 1, 1)).total_seconds() * 10**6)
    later = (epoch_us + 90_250_001) * 1000  # 90.250001 s after the prior allow
    ctl = controller(pipeline, decision_log, clock=lambda: later)
    document = ctl.build_document(parse_review(review("Pod")), caller="k")
    assert document.admission is not None
    (image,) = document.admission.images
    assert image.prior_decision_id == prior.decision_id
    assert image.prior_decision_age_s == pytest.approx(90.250001, abs=2e-6)


def test_dry_run_and_admission_allows_are_not_priors(
    pipeline: DecisionPipeline, decision_log: DecisionLog
) -> None:
    ci_allow(pipeline, dry_run=True)
    ctl = controller(pipeline, decision_log)
    _, decision = ctl.review(review("Pod"), caller="k")
    assert decision is not None and decision.verdict is Verdict.PAUSE
    # An allowed admission in an exempt namespace is logged, but it is no CI allow.
    _, exempt = ctl.review(review("Pod", namespace="kube-system"), caller="k")
    assert exempt is not None and exempt.verdict is Verdict.ALLOW
    _, decision = ctl.review(review("Pod"), caller="k", environment="kube-system")
    assert decision is not None and decision.verdict is Verdict.PAUSE


def test_dry_run_review_is_decided_and_recorded_as_dry_run(
    pipeline: DecisionPipeline, decision_log: DecisionLog
) -> None:
    ci_allow(pipeline)
    answer, decision = controller(pipeline, decision_log).review(
        review("Deployment", dry_run=True), caller="k"
    )
    assert decision is not None and decision.dry_run is True
    assert answer["response"]["allowed"] is True
    record = decision_log.get(decision.decision_id)
    assert record is not None and record.dry_run is True


def test_unknown_kind_fails_closed_unless_exempt(
    pipeline: DecisionPipeline, decision_log: DecisionLog
) -> None:
    body = review("Pod")
    body["request"]["kind"] = {"group": "example.com", "version": "v1", "kind": "Widget"}
    body["request"]["object"]["kind"] = "Widget"
    ctl = controller(pipeline, decision_log)
    answer, decision = ctl.review(body, caller="k")
    assert decision is not None and [r.code for r in decision.reasons] == ["kind_unsupported"]
    assert answer["response"]["allowed"] is False
    assert "example.com/Widget" in answer["response"]["status"]["message"]
    body["request"]["namespace"] = "kube-system"
    answer, _ = ctl.review(body, caller="k")
    assert answer["response"]["allowed"] is True


def test_rollout_with_workload_ref_has_no_images_of_its_own(
    pipeline: DecisionPipeline, decision_log: DecisionLog
) -> None:
    body = review("Rollout")
    del body["request"]["object"]["spec"]["template"]
    body["request"]["object"]["spec"]["workloadRef"] = {
        "apiVersion": "apps/v1", "kind": "Deployment", "name": "payments"}  # fmt: skip
    answer, decision = controller(pipeline, decision_log).review(body, caller="k")
    assert decision is not None and answer["response"]["allowed"] is True


def _broken(path: list[str], value: Any) -> dict[str, Any]:
    body = review("Deployment")
    node = body
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return body


@pytest.mark.parametrize(
    ("path", "value", "loc"),
    [
        (["apiVersion"], "admission.k8s.io/v1beta1", "apiVersion"),
        (["request", "operation"], "PATCH", "request.operation"),
        (["request", "object"], None, "request.object"),
        (["request", "kind"], "Deployment", "request.kind"),
        (["request", "dryRun"], "yes", "request.dryRun"),
        (["request", "object", "spec", "template"], None, "request.object.spec.template"),
        (["request", "object", "spec", "template", "spec", "containers"], {"a": 1},
         "request.object.spec.template.spec.containers"),
        (["request", "object", "spec", "template", "spec", "containers"], [{"image": "x"}],
         "request.object.spec.template.spec.containers[0].name"),
        (["request", "object", "spec", "template", "spec", "containers"],
         [{"name": "a", "image": 7}], "request.object.spec.template.spec.containers[0].image"),
        (["request", "object", "metadata", "labels"], {"a": 1}, "request.object.metadata.labels"),
    ],
)  # fmt: skip
def test_malformed_review_with_uid_is_denied_with_the_field(
    path: list[str], value: Any, loc: str, pipeline: DecisionPipeline, decision_log: DecisionLog
) -> None:
    body = _broken(path, value)
    answer, decision = controller(pipeline, decision_log).review(body, caller="k")
    assert decision is None
    response = answer["response"]
    assert response["uid"] == body["request"]["uid"]
    assert response["allowed"] is False
    assert response["status"]["code"] == 400
    assert loc in response["status"]["message"]


@pytest.mark.parametrize(
    "body", [[], "x", {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"},
             {"request": {"uid": ""}}, {"request": {"uid": 5}}],
)  # fmt: skip
def test_review_without_uid_raises_input_error(
    body: Any, pipeline: DecisionPipeline, decision_log: DecisionLog
) -> None:
    with pytest.raises(InputError) as err:
        controller(pipeline, decision_log).review(body, caller="k")
    assert "malformed AdmissionReview" in str(err.value)


def test_prior_lookup_is_one_per_distinct_digest(
    pipeline: DecisionPipeline, decision_log: DecisionLog
) -> None:
    calls: list[str] = []

    class CountingLog:
        def latest_allow_for(
            self, artifact_digest: str, environment: str, max_age_s: float, now: datetime
        ) -> Decision | None:
            calls.append(artifact_digest)
            return decision_log.latest_allow_for(artifact_digest, environment, max_age_s, now)

    ci_allow(pipeline)
    spec = pod_spec(f"a@{DIGEST_A}", init=f"b@{DIGEST_A}", ephemeral=f"c@{DIGEST_B}")
    ctl = AdmissionController(pipeline=pipeline, priors=CountingLog(), config=DEV)
    ctl.review(review("Pod", spec), caller="k")
    assert sorted(calls) == [DIGEST_A, DIGEST_B]


@pytest.mark.parametrize("priors_may_block", [False, True])
def test_review_async_answers_as_review_does(
    priors_may_block: bool, pipeline: DecisionPipeline, decision_log: DecisionLog
) -> None:
    """The service's path (on the event loop) gives the same answers as the blocking one."""
    prior = ci_allow(pipeline)
    ctl = controller(pipeline, decision_log)

    def answer_async(body: Any) -> tuple[dict[str, Any], Decision | None]:
        return asyncio.run(ctl.review_async(body, caller="k", priors_may_block=priors_may_block))

    for body in (review("Deployment"), review("Pod", image="ghcr.io/acme/payments:1.4"),
                 _broken(["apiVersion"], "admission.k8s.io/v1beta1")):  # fmt: skip
        want, want_decision = ctl.review(body, caller="k")
        got, got_decision = answer_async(body)
        if want_decision is None:
            assert got_decision is None and got == want
            continue
        assert got_decision is not None
        assert got_decision.verdict is want_decision.verdict
        assert got_decision.reasons == want_decision.reasons
        # Equal but for the decision id, which the message and annotations carry.
        got_text = json.dumps(got).replace(got_decision.decision_id, "<id>")
        assert got_text == json.dumps(want).replace(want_decision.decision_id, "<id>")
        record = decision_log.get(got_decision.decision_id)
        assert record is not None and record.request.adapter == "admission"
    with pytest.raises(InputError):
        answer_async([])
    assert prior.decision_id
