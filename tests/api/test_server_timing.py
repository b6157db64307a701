"""The ``Server-Timing`` header and the access line's parts (``engine.api.timing``)."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from engine.api.logs import JsonLogFormatter
from engine.api.timing import RequestTiming, add_log, add_opa, current_timing, parse_server_timing
from tests.adapters.conftest import review
from tests.api.conftest import Service, ServiceFactory, prod_request


def _access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    formatter = JsonLogFormatter()
    lines = [json.loads(formatter.format(r)) for r in caplog.records]
    return [line for line in lines if line.get("event") == "request"]


def _parts(response: Any) -> dict[str, float]:
    return parse_server_timing(response.headers["server-timing"])


def test_a_decision_says_what_opa_and_the_log_took(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="releasegate")
    response = service.decide(prod_request())
    assert response.status_code == 200
    parts = _parts(response)
    assert list(parts) == ["opa", "log", "total"]
    assert parts["opa"] > 0 and parts["log"] > 0
    assert parts["opa"] + parts["log"] < parts["total"]
    (line,) = _access_lines(caplog)
    assert line["decision_id"] == response.json()["decision_id"]
    assert (line["opa_ms"], line["log_ms"]) == (parts["opa"], parts["log"])
    assert line["duration_ms"] >= parts["total"]  # the line is written after the answer


def test_an_admission_says_the_same(service: Service) -> None:
    response = service.client.post(
        "/v1/admission/staging", json=review("Pod"), headers=service.headers("admission")
    )
    assert response.status_code == 200
    assert response.headers["x-releasegate-decision-id"]
    parts = _parts(response)
    assert list(parts) == ["opa", "log", "total"]
    assert parts["opa"] + parts["log"] < parts["total"]


def test_a_request_without_a_decision_has_its_total_only(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="releasegate")
    for response in (
        service.client.get("/healthz"),
        service.client.post("/v1/decisions", json={"release": {}}, headers=service.headers("ci")),
        service.client.get("/v1/keys", headers={"Authorization": "Bearer not-a-token"}),
    ):
        assert list(_parts(response)) == ["total"], response.status_code
    assert all("opa_ms" not in line and "log_ms" not in line for line in _access_lines(caplog))


def test_the_header_can_be_left_out_and_the_log_line_keeps_the_parts(
    make_service: ServiceFactory, caplog: pytest.LogCaptureFixture
) -> None:
    service = make_service(server_timing=False)
    caplog.set_level(logging.INFO, logger="releasegate")
    response = service.decide(prod_request())
    assert response.status_code == 200
    assert "server-timing" not in response.headers
    (line,) = _access_lines(caplog)
    assert line["opa_ms"] > 0 and line["log_ms"] > 0


def test_parts_add_up_and_read_back() -> None:
    timing = RequestTiming()
    token = current_timing.set(timing)
    try:
        add_opa(0.001)
        add_opa(0.0005)  # a second evaluation in one request counts too
        add_log(0.002)
    finally:
        current_timing.reset(token)
    add_opa(1.0)  # outside a request: nowhere to count, and no error
    value = timing.header_value(0.005).decode()
    assert value == "opa;dur=1.500, log;dur=2.000, total;dur=5.000"
    assert parse_server_timing(value) == {"opa": 1.5, "log": 2.0, "total": 5.0}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("total;dur=12.5", {"total": 12.5}),
        ('db;desc="query";dur="3.25", cache;desc=hit', {"db": 3.25}),  # quoted, no dur
        ("miss, a ; DUR = 1 ", {"a": 1.0}),
    ],
)
def test_other_servers_headers_read(value: str, expected: dict[str, float]) -> None:
    assert parse_server_timing(value) == expected


@pytest.mark.parametrize("value", [";dur=1", "a;dur=fast"])
def test_a_malformed_header_is_an_error(value: str) -> None:
    with pytest.raises(ValueError):
        parse_server_timing(value)
