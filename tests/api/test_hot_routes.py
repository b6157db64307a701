"""The hot routes (``engine.api.hot_routes``) answer as the FastAPI routes they stand in for.

Two apps on the same policy: the service as built, and the same app with its hot routes
taken out of the router, so that FastAPI's declarations of ``POST /v1/decisions`` and
``POST /v1/admission[/{environment}]`` serve. Every request of the table goes to both and
the answers are compared.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from starlette.routing import Route

from engine.api import hot_routes
from tests.adapters.conftest import review
from tests.api.conftest import Service, ServiceFactory, dev_request, prod_request
from tests.conftest import ASSETS

_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}")


def _without_hot_routes(service: Service) -> Service:
    router = service.client.app.router  # type: ignore[attr-defined]
    router.routes[:] = [r for r in router.routes if not _is_hot(r)]
    return service


def _is_hot(route: Any) -> bool:
    return getattr(getattr(route, "endpoint", None), "__module__", "") == hot_routes.__name__


@pytest.fixture
def pair(make_service: ServiceFactory) -> tuple[Service, Service]:
    """(the service with its hot routes, the same without them)."""
    return make_service(), _without_hot_routes(make_service())


# What two decisions of the same request share (not their ids, times or log positions).
_DECISION_FIELDS = ("verdict", "reasons", "warnings", "release", "artifact", "dry_run", "policy")


def _answer(service: Service, path: str, content: bytes, headers: dict[str, str]) -> Any:
    r = service.client.post(path, content=content, headers=headers)
    body = json.loads(_ID.sub("<id>", r.text)) if r.text else None
    if isinstance(body, dict) and "verdict" in body:
        body = {k: body[k] for k in _DECISION_FIELDS}
    return r.status_code, body, r.headers.get("www-authenticate")


def _answers(
    services: tuple[Service, Service],
    path: str,
    content: bytes,
    headers: dict[str, str],
    role: str | None,
) -> list[Any]:
    """The same request to each service, with the token of ``role`` (none when None)."""
    return [
        _answer(service, path, content, {**headers, **(service.headers(role) if role else {})})
        for service in services
    ]  # fmt: skip


def _json(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def _with(**evidence: Any) -> bytes:
    return _json({**prod_request(), "evidence": evidence})


JSON = {"Content-Type": "application/json"}
TRIVY = json.loads((ASSETS / "scanners" / "trivy" / "alpine-39.trivy.json").read_bytes())
DEEP: Any = {"mediaType": "application/vnd.dev.sigstore.bundle+json"}
for _ in range(300):
    DEEP = {"x": DEEP}
DECISION_CASES = {
    "allow": (_json(dev_request()), JSON, "ci"),
    "pause with reasons": (_json(prod_request()), JSON, "ci"),
    "no token": (_json(dev_request()), JSON, None),
    "wrong role": (_json(dev_request()), JSON, "admission"),
    "admin may": (_json(dev_request()), JSON, "admin"),
    "not json": (b"{not json", JSON, "ci"),
    "empty body": (b"", JSON, "ci"),
    "no content type": (_json(dev_request()), {}, "ci"),
    "text content type": (_json(dev_request()), {"Content-Type": "text/plain"}, "ci"),
    "json suffix type": (_json(dev_request()), {"Content-Type": "application/x+json"}, "ci"),
    "missing field": (_json({"release": dev_request()["release"]}), JSON, "ci"),
    "wrong type": (_json({**dev_request(), "dry_run": "perhaps"}), JSON, "ci"),
    "a list": (b"[1, 2]", JSON, "ci"),
    "nested too deep": (b"[" * 100_000 + b"]" * 100_000, JSON, "ci"),
    "not utf-8": (b'{"release": "\xff"}', JSON, "ci"),
    # Read lazily (engine.api.lazy_body), or declined by that reader and read eagerly.
    "a bundle, indented": (json.dumps(prod_request(), indent=2).encode(), JSON, "ci"),
    "a scan report": (_with(scans=[{"report": TRIVY}]), JSON, "ci"),
    "NaN in a report": (_with(scans=[{"report": {"x": float("nan")}}]), JSON, "ci"),
    "bad utf-8 inside an attestation": (
        _json(prod_request()).replace(b'"mediaType"', b'"mediaType\xff"'),
        JSON,
        "ci",
    ),
    "an attestation deeper than jiter reads": (_with(attestations=[DEEP]), JSON, "ci"),
    "an unknown evidence field": (_with(sboms=[]), JSON, "ci"),
    "a report that is a list": (_with(scans=[{"report": [TRIVY]}]), JSON, "ci"),
    "duplicate keys": (
        _json(prod_request())[:-1] + b', "dry_run": false, "dry_run": true}',
        JSON,
        "ci",
    ),
}


@pytest.mark.parametrize("case", sorted(DECISION_CASES))
def test_decisions_answer_as_the_fastapi_route(pair: tuple[Service, Service], case: str) -> None:
    content, headers, role = DECISION_CASES[case]
    hot, declared = _answers(pair, "/v1/decisions", content, headers, role)
    assert hot == declared
    if case in ("allow", "admin may"):
        assert hot[0] == 200 and hot[1]["verdict"] == "allow"


ADMISSION_CASES = {
    "a pod": (_json(review("Pod")), JSON, "admission", "/v1/admission"),
    "a pod, environment in the path": (
        _json(review("Pod")),
        JSON,
        "admission",
        "/v1/admission/staging",
    ),
    "a deployment": (_json(review("Deployment")), JSON, "admission", "/v1/admission/prod"),
    "not a review": (_json({"kind": "Pod"}), JSON, "admission", "/v1/admission"),
    "uid only": (_json({"request": {"uid": "u-1"}}), JSON, "admission", "/v1/admission"),
    "not json": (b"{", JSON, "admission", "/v1/admission"),
    "nested too deep": (b"[" * 100_000 + b"]" * 100_000, JSON, "admission", "/v1/admission"),
    "empty body": (b"", JSON, "admission", "/v1/admission"),
    "no content type": (_json(review("Pod")), {}, "admission", "/v1/admission"),
    "wrong role": (_json(review("Pod")), JSON, "ci", "/v1/admission"),
    "no token": (_json(review("Pod")), JSON, None, "/v1/admission/prod"),
}


@pytest.mark.parametrize("case", sorted(ADMISSION_CASES))
def test_admission_answers_as_the_fastapi_route(pair: tuple[Service, Service], case: str) -> None:
    content, headers, role, path = ADMISSION_CASES[case]
    hot, declared = _answers(pair, path, content, headers, role)
    assert hot == declared
    if case.startswith("a "):
        assert hot[0] == 200 and hot[1]["kind"] == "AdmissionReview"


def test_an_unauthenticated_body_is_not_parsed(pair: tuple[Service, Service]) -> None:
    """The one intended difference: FastAPI parses a JSON body before its dependencies run."""
    hot, declared = (_answer(service, "/v1/decisions", b"{not json", JSON) for service in pair)
    assert hot[0] == 401 and hot[1]["code"] == "unauthenticated"
    assert declared[0] == 422


def test_the_hot_routes_serve_and_the_declarations_document(service: Service) -> None:
    router = service.client.app.router  # type: ignore[attr-defined]
    first = router.routes[: len(hot_routes.hot_routes())]
    assert all(isinstance(r, Route) and _is_hot(r) for r in first)
    assert {(r.path, *sorted(r.methods or ())) for r in first} == {
        ("/v1/decisions", "POST"),
        ("/v1/admission", "POST"),
        ("/v1/admission/{environment}", "POST"),
    }
    paths = service.client.get("/openapi.json").json()["paths"]
    for path in ("/v1/decisions", "/v1/admission", "/v1/admission/{environment}"):
        assert "post" in paths[path]
    # The other methods on these paths still reach FastAPI's routes.
    r = service.client.get("/v1/decisions", headers=service.headers("auditor"))
    assert r.status_code == 200 and "records" in r.json()
    r = service.client.put("/v1/decisions", headers=service.headers("ci"))
    assert r.status_code == 405


def test_the_access_log_and_metrics_name_the_route(service: Service) -> None:
    assert service.decide(dev_request()).status_code == 200
    metrics = service.client.get("/metrics").text
    assert re.search(
        r'releasegate_http_requests_total\{method="POST",route="/v1/decisions",status="200"\}',
        metrics,
    )


# -- the hot lane (engine.api.hot_lane): the same answers without FastAPI's stack ----------


def _with_telemetry(service: Service) -> Service:
    """FastAPI's native telemetry switched on (a tracer provider configured): every request,
    the hot routes' included, then takes FastAPI's own path, so that its spans see it."""
    from opentelemetry.trace import NoOpTracerProvider

    app = service.client.app
    app._native_telemetry.config["tracer_provider"] = NoOpTracerProvider()  # type: ignore[attr-defined]
    assert app._native_telemetry.enabled()  # type: ignore[attr-defined]
    return service


@pytest.fixture
def lane_pair(make_service: ServiceFactory) -> tuple[Service, Service]:
    """(the service, whose hot routes take the lane; the same through FastAPI's stack)."""
    return make_service(), _with_telemetry(make_service())


def test_the_lane_serves_the_hot_routes_unless_telemetry_is_on(
    lane_pair: tuple[Service, Service],
) -> None:
    lane, stack = lane_pair
    for service in lane_pair:
        assert service.client.app.hot_lane is None  # type: ignore[attr-defined]
        assert service.decide(dev_request()).status_code == 200
        # Other routes, and other methods of a hot path, never take it.
        assert service.client.get("/v1/decisions", headers=service.headers("auditor")).is_success
    assert lane.client.app.hot_lane is not None  # type: ignore[attr-defined]
    assert stack.client.app.hot_lane is None  # type: ignore[attr-defined]


LANE_CASES = {
    **{f"decision: {k}": ("/v1/decisions", *v) for k, v in DECISION_CASES.items()},
    **{
        f"admission: {k}": (path, content, headers, role)
        for k, (content, headers, role, path) in ADMISSION_CASES.items()
    },
    "too large": ("/v1/decisions", b"[" + b" " * (4 * 1024 * 1024) + b"]", JSON, "ci"),
}


@pytest.mark.parametrize("case", sorted(LANE_CASES))
def test_the_lane_answers_as_fastapis_stack(lane_pair: tuple[Service, Service], case: str) -> None:
    path, content, headers, role = LANE_CASES[case]
    lane, stack = _answers(lane_pair, path, content, headers, role)
    assert lane == stack
    assert lane_pair[0].client.app.hot_lane is not None  # type: ignore[attr-defined]


class _BrokenPipeline:
    """A pipeline whose every decision fails with an error nobody handles."""

    async def decide_async(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")


def test_an_unhandled_error_is_the_apps_500_in_the_lane_too(
    lane_pair: tuple[Service, Service],
) -> None:
    answers = []
    for service in lane_pair:
        state = service.client.app.state.releasegate  # type: ignore[attr-defined]
        state.pipeline = _BrokenPipeline()
        answers.append(
            _answer(
                service, "/v1/decisions", _json(dev_request()), {**JSON, **service.headers("ci")}
            )
        )
    assert answers[0] == answers[1]
    assert answers[0][0] == 500 and answers[0][1]["code"] == "internal_error"
