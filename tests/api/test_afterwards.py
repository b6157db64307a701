"""Work a request owes once its answer has left (``engine.api.afterwards``): the decision's
log line and metrics follow the answer, in the same ASGI call, and nothing is dropped."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from engine.api.afterwards import AnswerFirst, after_the_answer
from engine.api.metrics import MeteredRecorder, ServiceMetrics
from engine.api.middleware import ServiceMiddleware
from engine.models.decision import Decision
from tests.log.helpers import make_decision


def test_outside_a_request_the_work_runs_at_once() -> None:
    done: list[str] = []
    after_the_answer(lambda: done.append("now"))
    assert done == ["now"]


def test_a_request_runs_its_work_in_order_when_it_finishes() -> None:
    done: list[str] = []
    afterwards = AnswerFirst()
    after_the_answer(lambda: done.append("line"))
    after_the_answer(lambda: done.append("metrics"))
    assert done == []
    afterwards.finish()
    assert done == ["line", "metrics"]
    after_the_answer(lambda: done.append("outside again"))
    assert done == ["line", "metrics", "outside again"]


def test_a_failing_item_is_logged_and_the_rest_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    done: list[str] = []

    def broken() -> None:
        raise OSError("stderr closed")

    afterwards = AnswerFirst()
    after_the_answer(broken)
    after_the_answer(lambda: done.append("metrics"))
    afterwards.finish()
    assert done == ["metrics"]
    assert "work after a request's answer failed" in caplog.text
    assert "stderr closed" in caplog.text


class _FakeLog:
    """The decision log as far as the recorder calls it: it returns what it is given."""

    async def append_async(self, decision: Decision, **_: Any) -> Decision:
        return decision

    def append(self, decision: Decision, **_: Any) -> Decision:
        return decision


def _recorder(lines: list[str]) -> tuple[MeteredRecorder, ServiceMetrics]:
    metrics = ServiceMetrics()
    recorder = MeteredRecorder(
        _FakeLog(),  # type: ignore[arg-type]
        metrics,
        on_record=lambda decision, caller, adapter: lines.append(decision.decision_id),
    )
    return recorder, metrics


def _recorded(metrics: ServiceMetrics, verdict: str) -> float | None:
    return metrics.registry.get_sample_value("releasegate_decisions_total", {"verdict": verdict})


def test_the_recorder_counts_and_logs_a_decision_after_the_answer() -> None:
    lines: list[str] = []
    recorder, metrics = _recorder(lines)
    decision = make_decision(reasons=("scan_missing",), verdict="pause")

    async def one_request() -> None:
        afterwards = AnswerFirst()
        await recorder.append_async(decision, input_document={}, caller="ci", adapter="cli")
        assert lines == [] and _recorded(metrics, "pause") is None  # the answer goes first
        afterwards.finish()

    asyncio.run(one_request())
    assert lines == [decision.decision_id]
    assert _recorded(metrics, "pause") == 1.0
    reasons = {"code": "scan_missing", "verdict": "pause"}
    assert metrics.registry.get_sample_value("releasegate_decision_reasons_total", reasons) == 1.0


def test_without_a_request_the_recorder_counts_and_logs_at_once() -> None:
    lines: list[str] = []
    recorder, metrics = _recorder(lines)
    decision = make_decision()
    recorder.append(decision, input_document={}, caller=None, adapter="cli")
    assert lines == [decision.decision_id] and _recorded(metrics, "allow") == 1.0


def test_the_middleware_runs_the_work_after_the_last_send_and_before_it_returns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        after_the_answer(lambda: events.append("decision line"))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        events.append(message["type"])

    middleware = ServiceMiddleware(app, max_body_bytes=1024, metrics=ServiceMetrics())
    scope = {"type": "http", "method": "POST", "path": "/x", "headers": [], "state": {}}
    caplog.set_level(logging.INFO, logger="releasegate")
    asyncio.run(middleware(scope, receive, send))
    assert events == ["http.response.start", "http.response.body", "decision line"]
    assert [r.getMessage() for r in caplog.records if r.name.endswith("access")] == ["request"]
