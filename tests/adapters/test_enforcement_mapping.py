"""Every row of contract §7: adapter × verdict → what the target system is told.

Verdicts are scripted with ``FakeEngine`` through the real pipeline and adapters, so each
cell of the table is checked on its own; the real-OPA paths are in ``test_admission.py``
and ``test_api_adapters.py``.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from engine.adapters import flagger, rollouts
from engine.adapters.admission import AdmissionConfig, AdmissionController
from engine.adapters.exit_codes import exit_code
from engine.decision import DecisionPipeline
from engine.engines.fake import FakeEngine
from engine.inputs.base import FactProviders, NoApprovalStore
from engine.inputs.provenance import ProvenanceVerifier
from engine.inputs.providers import ScanReports, SigstoreProvenance
from engine.models.common import Verdict
from engine.models.decision import Decision, PolicyResult, Reason
from tests.adapters.conftest import FixedSlo, review

VERDICTS = [Verdict.ALLOW, Verdict.PAUSE, Verdict.ROLLBACK]


def scripted(verdict: Verdict, verifier: ProvenanceVerifier) -> DecisionPipeline:
    """A pipeline whose engine answers ``verdict`` (with a reason of that verdict)."""
    reasons = [] if verdict is Verdict.ALLOW else [
        Reason(code=f"test_{verdict.value}", verdict=verdict, policy="releasegate.test",
               message=f"scripted {verdict.value}")
    ]  # fmt: skip
    engine = FakeEngine(lambda doc: PolicyResult(verdict=verdict, reasons=reasons))
    providers = FactProviders(SigstoreProvenance(verifier), ScanReports(), FixedSlo(),
                              NoApprovalStore())  # fmt: skip
    return DecisionPipeline(engine=engine, providers=providers)


@pytest.fixture(scope="module")
def verifier() -> ProvenanceVerifier:
    return ProvenanceVerifier.from_settings()


class NoPriors:
    def latest_allow_for(
        self, artifact_digest: str, environment: str, max_age_s: float, now: datetime
    ) -> Decision | None:
        return None


@pytest.mark.parametrize(("verdict", "code"), [(Verdict.ALLOW, 0), (Verdict.PAUSE, 3),
                                               (Verdict.ROLLBACK, 4)])  # fmt: skip
def test_ci_check_exit_codes(verdict: Verdict, code: int) -> None:
    assert exit_code(verdict) == code


@pytest.mark.parametrize(
    ("verdict", "allowed", "status"),
    [(Verdict.ALLOW, True, None), (Verdict.PAUSE, False, 403), (Verdict.ROLLBACK, False, 403)],
)
def test_admission_webhook(
    verdict: Verdict, allowed: bool, status: int | None, verifier: ProvenanceVerifier
) -> None:
    ctl = AdmissionController(
        pipeline=scripted(verdict, verifier), priors=NoPriors(), config=AdmissionConfig()
    )
    answer, decision = ctl.review(review("Deployment"), caller="k")
    response = answer["response"]
    assert response["allowed"] is allowed
    assert response.get("status", {}).get("code") == status
    if status is not None:
        assert f"test_{verdict.value}: scripted {verdict.value}" in response["status"]["message"]
    assert decision is not None
    assert response["auditAnnotations"]["decision-id"] == decision.decision_id


@pytest.mark.parametrize(
    ("verdict", "outcome"),
    [(Verdict.ALLOW, "Successful"), (Verdict.PAUSE, "Inconclusive"),
     (Verdict.ROLLBACK, "Failed")],
)  # fmt: skip
def test_argo_rollouts_web_metric(
    verdict: Verdict, outcome: str, verifier: ProvenanceVerifier
) -> None:
    hook = rollouts.parse_rollout_hook(
        {"release_id": "r", "service": "s", "environment": "prod", "stage": "canary",
         "artifact_digest": "sha256:" + "c" * 64}
    )  # fmt: skip
    decision = scripted(verdict, verifier).decide(
        hook.to_decision_request(), adapter="argo-rollouts"
    )
    body = rollouts.metric_response(decision)
    assert body["verdict"] == verdict.value  # what jsonPath "{$.verdict}" reads
    assert rollouts.metric_outcome(verdict).value == outcome == body["outcome"]


CONFIRM = ["confirm-rollout", "confirm-promotion", "confirm-traffic-increase"]
FLAGGER_TABLE = (
    [(h, v, s) for h in CONFIRM for v, s in zip(VERDICTS, (200, 403, 403), strict=True)]
    + [(h, v, s) for h in ("pre-rollout", "rollout")
       for v, s in zip(VERDICTS, (200, 403, 403), strict=True)]
    + [("rollback", v, s) for v, s in zip(VERDICTS, (403, 403, 200), strict=True)]
    + [("post-rollout", v, 200) for v in VERDICTS]
)  # fmt: skip


@pytest.mark.parametrize(("hook", "verdict", "status"), FLAGGER_TABLE)
def test_flagger_hooks(
    hook: str, verdict: Verdict, status: int, verifier: ProvenanceVerifier
) -> None:
    kind = flagger.parse_hook(hook)
    payload = flagger.parse_payload(
        {"name": "payments", "namespace": "prod", "phase": "Progressing", "checksum": "x"}
    )
    request = flagger.decision_request(payload, kind)
    assert request.release.stage.value == ("promote" if hook == "confirm-promotion" else "canary")
    decision = scripted(verdict, verifier).decide(request, adapter="flagger")
    assert flagger.status_code(kind, decision.verdict) == status


def test_flagger_unknown_hook() -> None:
    with pytest.raises(LookupError, match="unknown Flagger hook 'event'"):
        flagger.parse_hook("event")
