"""Approvals through the API change a real OPA decision: pause -> allow, and when they don't."""

from __future__ import annotations

import time

from tests.api.conftest import (
    CI_SUBJECT,
    REQUESTER,
    Service,
    ServiceFactory,
    approval,
    prod_request,
)


def _codes(body: dict[str, object]) -> list[str]:
    return sorted(r["code"] for r in body["reasons"])  # type: ignore[attr-defined, index]


def test_an_approval_turns_pause_into_allow(service: Service) -> None:
    before = service.client.post(
        "/v1/decisions", json=prod_request(), headers=service.headers("ci")
    )
    assert before.status_code == 200
    assert before.json()["verdict"] == "pause"
    assert _codes(before.json()) == ["approval_missing"]

    rec = service.client.post(
        "/v1/approvals",
        json=approval(comment="LGTM", ticket="CHG-1"),
        headers=service.headers("approver"),
    )
    assert rec.status_code == 201, rec.text
    assert rec.json()["approver"] == "approver-subject"
    assert rec.json()["approver_roles"] == ["approver"]

    after = service.decide(prod_request())
    assert after.json()["verdict"] == "allow", after.json()
    assert after.json()["reasons"] == []
    # The recorded input holds the approval as a fact, and the caller as authenticated.
    record = service.client.get(
        f"/v1/decisions/{after.json()['decision_id']}", headers=service.headers("auditor")
    ).json()
    assert [a["id"] for a in record["input"]["approvals"]["records"]] == [rec.json()["id"]]
    assert record["request"]["caller"] == CI_SUBJECT
    assert record["release"]["requested_by"] == REQUESTER


def test_self_approval_by_requested_by_does_not_count(service: Service) -> None:
    alice = service.token(REQUESTER, "approver")
    rec = service.client.post(
        "/v1/approvals", json=approval(), headers={"Authorization": f"Bearer {alice}"}
    )
    assert rec.status_code == 201
    body = service.client.post(
        "/v1/decisions", json=prod_request(), headers=service.headers("ci")
    ).json()
    assert body["verdict"] == "pause"
    assert _codes(body) == ["approval_missing", "approval_self"]


def test_self_approval_by_the_calling_subject_does_not_count(service: Service) -> None:
    # The CI identity also holds the approver role: it may not approve what it asks for.
    both = service.token("deploy-bot", "ci", "approver")
    headers = {"Authorization": f"Bearer {both}"}
    assert service.client.post("/v1/approvals", json=approval(), headers=headers).status_code == 201
    body = service.client.post(
        "/v1/decisions", json=prod_request(requested_by=None), headers=headers
    ).json()
    assert body["verdict"] == "pause"
    assert _codes(body) == ["approval_missing", "approval_self"]
    # The same approval counts when someone else asks.
    other = service.client.post(
        "/v1/decisions", json=prod_request(), headers=service.headers("ci")
    ).json()
    assert other["verdict"] == "allow"


def test_an_expired_approval_does_not_count(make_service: ServiceFactory) -> None:
    # The store's clock says the approval was given two days ago, with the 1-day default TTL.
    two_days_ago = time.time_ns() - 2 * 86400 * 10**9
    service = make_service(approvals_clock=lambda: two_days_ago)
    rec = service.client.post("/v1/approvals", json=approval(), headers=service.headers("approver"))
    assert rec.status_code == 201
    assert rec.json()["expires_ns"] < time.time_ns()
    body = service.client.post(
        "/v1/decisions", json=prod_request(), headers=service.headers("ci")
    ).json()
    assert body["verdict"] == "pause"
    assert _codes(body) == ["approval_expired", "approval_missing"]


def test_a_revocation_is_a_new_record_and_withdraws_the_approval(service: Service) -> None:
    h = service.headers("approver")
    first = service.client.post("/v1/approvals", json=approval(), headers=h).json()
    allow = service.decide(prod_request())
    assert allow.json()["verdict"] == "allow"
    revoke = service.client.post(
        "/v1/approvals", json=approval(kind="revoke", revokes=first["id"]), headers=h
    )
    assert revoke.status_code == 201, revoke.text
    body = service.client.post(
        "/v1/decisions", json=prod_request(), headers=service.headers("ci")
    ).json()
    assert body["verdict"] == "pause"
    listed = service.client.get(
        "/v1/approvals", params={"release_id": "payments-1.4.2"}, headers=service.headers("auditor")
    ).json()["records"]
    # Append-only: the original record is still there, unchanged, followed by the revocation.
    assert [r["kind"] for r in listed] == ["approve", "revoke"]
    assert listed[0] == first
    assert listed[1]["revokes"] == first["id"]


def test_approval_for_another_environment_does_not_count(service: Service) -> None:
    rec = service.client.post(
        "/v1/approvals", json=approval(environment="staging"), headers=service.headers("approver")
    )
    assert rec.status_code == 201
    body = service.client.post(
        "/v1/decisions", json=prod_request(), headers=service.headers("ci")
    ).json()
    assert _codes(body) == ["approval_missing"]


def test_expiry_default_and_maximum(make_service: ServiceFactory) -> None:
    service = make_service(approval_default_ttl_s=3600, approval_max_ttl_s=7200)
    h = service.headers("approver")
    default = service.client.post("/v1/approvals", json=approval(), headers=h).json()
    assert default["expires_ns"] - default["created_ns"] == 3600 * 10**9
    chosen = service.client.post(
        "/v1/approvals", json=approval(expires_in_s=7200), headers=h
    ).json()
    assert chosen["expires_ns"] - chosen["created_ns"] == 7200 * 10**9
    too_long = service.client.post("/v1/approvals", json=approval(expires_in_s=7201), headers=h)
    assert too_long.status_code == 422
    assert [e["loc"] for e in too_long.json()["errors"]] == ["body.expires_in_s"]


def test_bad_approval_bodies_name_the_field(service: Service) -> None:
    h = service.headers("approver")
    cases = {
        "body.artifact_digest": approval(artifact_digest="sha256:nothex"),
        "body.kind": approval(kind="veto"),
        "body.approver": approval(approver="mallory"),  # the approver comes from the token
        "body.revokes": approval(kind="revoke"),
        "body.expires_in_s": approval(expires_in_s=0),
    }
    for loc, body in cases.items():
        r = service.client.post("/v1/approvals", json=body, headers=h)
        assert r.status_code == 422, (loc, r.text)
        assert loc in [e["loc"] for e in r.json()["errors"]], (loc, r.json())
    unknown = service.client.post(
        "/v1/approvals", json=approval(kind="revoke", revokes="no-such-id"), headers=h
    )
    assert unknown.status_code == 422
