"""``/v1/decisions`` and the log routes: responses, errors, limits; no verdict without a record."""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Iterator

from engine.auth.sql import database_url
from engine.log import KeyRing
from engine.log.vsa import PAYLOAD_TYPE, pae
from tests.api.conftest import Service, ServiceFactory, dev_request, prod_request


def _log_size(service: Service) -> int:
    r = service.client.get("/v1/log/checkpoint", headers=service.headers("auditor"))
    return int(r.json()["size"])


def test_every_verdict_is_200_with_the_decision_id_header(service: Service) -> None:
    allow = service.decide(dev_request())
    pause = service.decide(prod_request())
    rollback_request = prod_request()
    rollback_request["artifact"]["digest"] = "sha256:" + "0" * 64  # attestation names a.txt
    rollback = service.decide(rollback_request)
    for r, verdict in ((allow, "allow"), (pause, "pause"), (rollback, "rollback")):
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["verdict"] == verdict
        assert r.headers["X-Releasegate-Decision-Id"] == body["decision_id"]
        assert body["log"]["index"] >= 0 and body["signature"]["alg"] == "Ed25519"
    assert "subject_mismatch" in {x["code"] for x in rollback.json()["reasons"]}


def test_the_record_carries_the_caller_and_verifies(service: Service) -> None:
    decided = service.decide(prod_request()).json()
    record = service.client.get(
        f"/v1/decisions/{decided['decision_id']}", headers=service.headers("auditor")
    )
    assert record.status_code == 200
    doc = record.json()
    assert doc["request"] == {"caller": "ci-pipeline", "adapter": "api", "dry_run": False}
    assert doc["input"]["release"]["caller"] == "ci-pipeline"
    assert doc["signature"] == decided["signature"]
    keys = KeyRing.from_json(service.client.get("/v1/keys").text)
    record_hash = bytes.fromhex(doc["log"]["record_hash"].removeprefix("sha256:"))
    keys.verify(
        doc["signature"]["key_id"], record_hash, base64.b64decode(doc["signature"]["value"])
    )


def test_invalid_input_is_422_naming_the_field(service: Service) -> None:
    bad_stage = dev_request()
    bad_stage["release"]["stage"] = "yolo"
    unknown = dev_request()
    unknown["release"]["colour"] = "blue"
    bad_digest = dev_request()
    bad_digest["artifact"]["digest"] = "sha256:ABC"
    for body, loc in (
        (bad_stage, "body.release.stage"),
        (unknown, "body.release.colour"),
        (bad_digest, "body.artifact.digest"),
        ({"release": dev_request()["release"]}, "body.artifact"),
    ):
        r = service.decide(body)
        assert r.status_code == 422, r.text
        err = r.json()
        assert set(err) == {"code", "message", "errors"}
        assert err["code"] == "invalid_input"
        assert loc in [e["loc"] for e in err["errors"]]
        assert loc in err["message"]
        assert "verdict" not in err


def test_a_body_that_is_not_json_is_422(service: Service) -> None:
    r = service.client.post(
        "/v1/decisions",
        content=b"{not json",
        headers={**service.headers("ci"), "Content-Type": "application/json"},
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"].startswith("body")


def test_body_limit_by_content_length_and_by_stream(make_service: ServiceFactory) -> None:
    service = make_service(max_body_bytes=2048)
    big = dev_request()
    big["evidence"] = {"attestations": [{"padding": "x" * 4096}]}
    r = service.decide(big)
    assert r.status_code == 413
    assert r.json()["code"] == "request_too_large"

    def chunks() -> Iterator[bytes]:
        for _ in range(8):
            yield b" " * 512  # no Content-Length: counted as it streams

    streamed = service.client.post(
        "/v1/decisions",
        content=chunks(),
        headers={**service.headers("ci"), "Content-Type": "application/json"},
    )
    assert streamed.status_code == 413
    assert _log_size(service) == 0
    small = service.decide(dev_request())
    assert small.status_code == 200


def test_log_write_failure_is_503_without_verdict_or_record(service: Service) -> None:
    assert service.decide(dev_request("before")).status_code == 200
    db = sqlite3.connect(database_url(service.state_dir).removeprefix("sqlite:///"))
    # The database refuses the insert (as a full disk or a read-only volume would).
    db.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON log_records "
        "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
    )
    db.commit()
    r = service.decide(dev_request("during"))
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["code"] == "log_unavailable"
    assert "verdict" not in json.dumps(body) and "allow" not in json.dumps(body)
    assert "X-Releasegate-Decision-Id" not in r.headers
    # No partial record: no row, no tree nodes, the head unchanged.
    assert db.execute("SELECT count(*) FROM log_records").fetchone() == (1,)
    assert db.execute("SELECT size FROM log_head").fetchone() == (1,)
    assert db.execute("SELECT count(*) FROM log_nodes").fetchone() == (1,)
    db.execute("DROP TRIGGER refuse")
    db.commit()
    db.close()
    after = service.decide(dev_request("after"))
    assert after.status_code == 200
    assert after.json()["log"]["index"] == 1


def test_closed_log_is_503(service: Service) -> None:
    service.client.app.state.releasegate.decision_log.close()  # type: ignore[attr-defined]
    r = service.decide(dev_request())
    assert r.status_code == 503
    assert r.json()["code"] == "log_unavailable"


def test_query_pages_proofs_and_consistency(service: Service) -> None:
    ids = [service.decide(dev_request(f"rel-{n}")).json()["decision_id"] for n in range(5)]
    h = service.headers("auditor")
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", "service": "payments"} | ({"cursor": cursor} if cursor else {})
        page = service.client.get("/v1/decisions", params=params, headers=h).json()
        seen += [rec["decision_id"] for rec in page["records"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(ids))
    only = service.client.get("/v1/decisions", params={"release_id": "rel-3"}, headers=h).json()
    assert [r["decision_id"] for r in only["records"]] == [ids[3]]
    bad = service.client.get("/v1/decisions", params={"verdict": "maybe"}, headers=h)
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == "query.verdict"

    proof = service.client.get(f"/v1/decisions/{ids[1]}/proof", params={"tree_size": 4}, headers=h)
    assert proof.status_code == 200
    assert proof.json()["leaf_index"] == 1 and proof.json()["tree_size"] == 4
    out_of_tree = service.client.get(
        f"/v1/decisions/{ids[4]}/proof", params={"tree_size": 3}, headers=h
    )
    assert out_of_tree.status_code == 422
    missing = service.client.get("/v1/decisions/nope/proof", headers=h)
    assert missing.status_code == 404

    cons = service.client.get("/v1/log/consistency", params={"first": 2, "second": 5}, headers=h)
    assert cons.status_code == 200 and cons.json()["second"] == 5
    too_big = service.client.get("/v1/log/consistency", params={"first": 2, "second": 9}, headers=h)
    assert too_big.status_code == 422
    cp = service.client.get("/v1/log/checkpoint", headers=h).json()
    assert cp["size"] == 5 and cp["root_hash"] == cons.json()["second_root_hash"]


def test_vsa_for_allow_only(service: Service) -> None:
    h = service.headers("auditor")
    allow = service.decide(dev_request()).json()["decision_id"]
    pause = service.decide(prod_request()).json()["decision_id"]
    dry = service.decide(dev_request() | {"dry_run": True}).json()["decision_id"]
    r = service.client.get(f"/v1/decisions/{allow}/vsa", headers=h)
    assert r.status_code == 200
    env = r.json()
    keys = KeyRing.from_json(service.client.get("/v1/keys").text)
    payload = base64.b64decode(env["payload"])
    sig = env["signatures"][0]
    keys.verify(sig["keyid"], pae(PAYLOAD_TYPE, payload), base64.b64decode(sig["sig"]))
    statement = json.loads(payload)
    assert statement["predicate"]["verificationResult"] == "PASSED"
    for other in (pause, dry):
        refused = service.client.get(f"/v1/decisions/{other}/vsa", headers=h)
        assert refused.status_code == 409 and refused.json()["code"] == "conflict"
    assert service.client.get("/v1/decisions/nope/vsa", headers=h).status_code == 404


def test_unexpected_errors_do_not_leak(service: Service) -> None:
    state = service.client.app.state.releasegate  # type: ignore[attr-defined]

    class Broken:
        def get(self, decision_id: str) -> None:
            raise RuntimeError("secret /etc/internal/path token=abc")

    real = state.decision_log
    state.decision_log = Broken()
    try:
        r = service.client.get("/v1/decisions/x", headers=service.headers("auditor"))
    finally:
        state.decision_log = real
    assert r.status_code == 500
    assert r.json() == {
        "code": "internal_error",
        "message": "internal error; see the service log",
        "errors": [],
    }


def test_unknown_route_and_method_use_the_error_shape(service: Service) -> None:
    r = service.client.get("/v1/nothing")
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    m = service.client.delete("/v1/decisions", headers=service.headers("admin"))
    assert m.status_code == 405 and set(m.json()) == {"code", "message", "errors"}


def test_malformed_evidence_is_422_not_a_crash(service: Service) -> None:
    body = dev_request()
    body["evidence"] = {"scans": [{"format": "trivy", "report": {"Results": "not a list"}}]}
    r = service.decide(body)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "invalid_input"
    assert "verdict" not in r.json()
