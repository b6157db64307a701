"""Pure parts of the adapters: image references, labels, responses, hook bodies."""

from __future__ import annotations

import pytest

from engine.adapters import flagger, rollouts
from engine.adapters.admission import (
    MAX_WARNING_CHARS,
    AdmissionConfig,
    admission_response,
    parse_review,
)
from engine.adapters.admission_objects import (
    image_digest,
    image_repository,
    images_in,
    template_labels,
)
from engine.errors import InputError
from engine.models.common import Verdict
from engine.models.decision import Decision, EngineInfo, PolicyInfo, Reason, Warning
from tests.adapters.conftest import review

HEX = "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("image", "digest"),
    [
        (f"ghcr.io/acme/app@sha256:{HEX}", f"sha256:{HEX}"),
        (f"ghcr.io/acme/app:1.2@sha256:{HEX}", f"sha256:{HEX}"),
        (f"localhost:5000/app@sha256:{HEX}", f"sha256:{HEX}"),
        ("ghcr.io/acme/app:1.2", None),
        ("nginx", None),
        ("localhost:5000/app", None),
        (f"app@sha256:{HEX.upper()}", None),
        (f"app@sha256:{HEX[:-1]}", None),
        (f"app@sha512:{HEX}{HEX}", None),
        ("", None),
    ],
)
def test_image_digest(image: str, digest: str | None) -> None:
    assert image_digest(image) == digest


def test_image_repository() -> None:
    assert image_repository(f"ghcr.io/acme/app:1.2@sha256:{HEX}") == "ghcr.io/acme/app:1.2"
    assert image_repository("nginx:1") == "nginx:1"


def test_absent_image_in_a_template_is_not_pinned() -> None:
    (fact,) = images_in({"containers": [{"name": "app"}]})
    assert (fact.image, fact.digest, fact.kind) == ("", None, "container")


def test_template_labels_and_identity() -> None:
    body = review("CronJob", name="nightly", labels={"team": "payments"})
    parsed = parse_review(body)
    assert parsed.name == "nightly" and parsed.dry_run is False
    assert parsed.username == "alice@example.com"
    assert template_labels("batch", "CronJob", parsed.obj or {}) == {
        "app.kubernetes.io/name": "payments"
    }
    assert template_labels("", "Pod", parsed.obj or {}) == {}


def test_generated_pod_name() -> None:
    body = review("Pod")
    del body["request"]["name"]
    del body["request"]["object"]["metadata"]["name"]
    body["request"]["object"]["metadata"]["generateName"] = "payments-7d9f-"
    assert parse_review(body).name == "payments-7d9f-<generated>"


def test_delete_needs_no_object() -> None:
    body = review("Pod", operation="CREATE")
    body["request"].update(operation="DELETE", object=None)
    assert parse_review(body).obj is None


def test_environment_resolution_order() -> None:
    config = AdmissionConfig(environments={"pay": "prod"}, default_environment="dev")
    assert config.environment_for("pay", "staging") == "staging"
    assert config.environment_for("pay", None) == "prod"
    assert config.environment_for("other", None) == "dev"
    assert AdmissionConfig().environment_for("other", None) == "other"


def _decision(verdict: Verdict, reasons: list[Reason], warnings: list[Warning]) -> Decision:
    return Decision(
        decision_id="d-1", timestamp="2026-11-26T12:00:00.000000Z", verdict=verdict,
        reasons=reasons, warnings=warnings, release={}, artifact={},
        policy=PolicyInfo(revision="r", digest="sha256:" + "0" * 64),
        engine=EngineInfo(name="opa", version="1"), input_digest="sha256:" + "0" * 64,
    )  # fmt: skip


def test_warn_mode_reasons_become_kubernetes_warnings() -> None:
    long = Warning(code="image_not_pinned", policy="releasegate.admission", message="x" * 400)
    answer = admission_response("uid-1", _decision(Verdict.ALLOW, [], [long]))
    response = answer["response"]
    assert response["allowed"] is True and "status" not in response
    (warning,) = response["warnings"]
    assert warning.startswith("releasegate image_not_pinned: xxx")
    assert len(warning) == MAX_WARNING_CHARS


def test_denial_lists_every_reason() -> None:
    reasons = [
        Reason(code="image_not_pinned", verdict=Verdict.ROLLBACK, policy="p", message="m1"),
        Reason(code="no_prior_decision", verdict=Verdict.PAUSE, policy="p", message="m2"),
    ]
    answer = admission_response(
        "uid-2", _decision(Verdict.ROLLBACK, reasons, []), subject="Pod a/b"
    )
    status = answer["response"]["status"]
    assert status["code"] == 403 and status["reason"] == "Forbidden"
    assert status["message"] == (
        "releasegate rollback Pod a/b (decision d-1): image_not_pinned: m1; no_prior_decision: m2"
    )
    assert answer["response"]["auditAnnotations"] == {"decision-id": "d-1", "verdict": "rollback"}


def test_rollout_hook_body_rejects_unknown_fields() -> None:
    with pytest.raises(InputError) as err:
        body = {"release_id": "r", "service": "s", "environment": "e",
                "artifact_digest": "sha256:" + "a" * 64, "extra": 1}  # fmt: skip
        rollouts.parse_rollout_hook(body)
    assert [e.loc for e in err.value.errors] == ["extra"]


def test_flagger_metadata_dry_run_and_extra_payload_fields() -> None:
    body = {"name": "p", "namespace": "n", "phase": "Progressing", "checksum": "c",
            "type": "rollout", "metadata": {"dry_run": "true", "version": "1.2"}}  # fmt: skip
    payload = flagger.parse_payload(body)
    request = flagger.decision_request(payload, flagger.FlaggerHook.CONFIRM_PROMOTION)
    assert request.dry_run is True
    assert request.release.version == "1.2" and request.release.stage.value == "promote"
    with pytest.raises(InputError) as err:
        flagger.parse_payload({"name": "p", "namespace": "n", "metadata": {"a": 1}})
    assert err.value.errors[0].loc.startswith("metadata")
