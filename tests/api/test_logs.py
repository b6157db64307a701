"""The service's JSON log lines (``engine.api.logs``): what they say and when they are written."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import math
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.api.logs import JsonLinesHandler, JsonLogFormatter, configure_logging, dumps_line


class CountingStream(io.StringIO):
    """A text stream that counts its writes and flushes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.flushes = 0

    def write(self, s: str) -> int:
        self.writes += 1
        return super().write(s)

    def flush(self) -> None:
        self.flushes += 1
        super().flush()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.getvalue().splitlines()]


@pytest.fixture
def logger() -> Iterator[tuple[logging.Logger, CountingStream, JsonLinesHandler]]:
    stream = CountingStream()
    handler = JsonLinesHandler(stream)
    handler.setFormatter(JsonLogFormatter())
    log = logging.getLogger("releasegate.test-logs")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    yield log, stream, handler
    log.removeHandler(handler)
    log.propagate = True


# -- dumps_line ---------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(), json_values, max_size=6))
def test_a_line_reads_back_as_the_standard_library_writes_it(doc: dict[str, Any]) -> None:
    line = dumps_line(doc)
    assert line.isascii() and "\n" not in line
    assert json.loads(line) == json.loads(json.dumps(doc, default=str))
    assert list(json.loads(line)) == list(doc)  # field order kept


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"n": 2**70}, '{"n":1180591620717411303424}'),  # orjson refuses: exact, not a float
        ({"k": {1: "a"}}, '{"k":{"1":"a"}}'),  # orjson refuses non-string keys
        ({"s": "caf\u00e9"}, '{"s":"caf\\u00e9"}'),  # non-ASCII text escaped, as json.dumps
        ({"s": "\ud800"}, '{"s":"\\ud800"}'),  # a lone surrogate
        ({"o": object}, '{"o":"<class \'object\'>"}'),  # not JSON: str(value)
        ({"t": (1, 2)}, '{"t":[1,2]}'),
    ],
)
def test_what_orjson_refuses_or_would_not_escape_is_written_by_the_standard_library(
    doc: dict[str, Any], expected: str
) -> None:
    assert dumps_line(doc) == expected


def test_nan_is_written_as_null_valid_json() -> None:
    assert json.loads(dumps_line({"x": math.nan, "y": math.inf})) == {"x": None, "y": None}


# -- the formatter ------------------------------------------------------------------------


def _record(created: float, **extra: Any) -> logging.LogRecord:
    record = logging.LogRecord("releasegate.x", logging.INFO, __file__, 1, "msg %s", ("a",), None)
    record.created = created
    record.msecs = (created - int(created)) * 1000
    for key, value in extra.items():
        setattr(record, key, value)
    return record


@pytest.mark.parametrize("created", [0.0, 1_790_000_000.999, 1_790_000_001.0, 1_790_000_001.5])
def test_the_timestamp_is_utc_with_milliseconds(created: float) -> None:
    formatter = JsonLogFormatter()
    for _ in range(2):  # the second call reads the cached second
        ts = json.loads(formatter.format(_record(created)))["ts"]
        expected = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(created)))
        assert ts == f"{expected}.{int((created % 1) * 1000):03d}Z"


def test_each_second_is_its_own_even_when_seconds_alternate() -> None:
    formatter = JsonLogFormatter()
    stamps = [json.loads(formatter.format(_record(t)))["ts"] for t in (100.5, 101.5, 100.25)]
    assert stamps == [
        "1970-01-01T00:01:40.500Z",
        "1970-01-01T00:01:41.500Z",
        "1970-01-01T00:01:40.250Z",
    ]


def test_a_line_carries_the_message_and_fields_and_an_exception_only_by_type() -> None:
    try:
        raise ValueError("secret request data")
    except ValueError:
        import sys

        exc_info = sys.exc_info()
    record = _record(5.0, fields={"event": "request", "status": 200})
    record.exc_info = exc_info
    line = json.loads(JsonLogFormatter().format(record))
    assert line == {
        "ts": "1970-01-01T00:00:05.000Z",
        "level": "info",
        "logger": "releasegate.x",
        "message": "msg a",
        "event": "request",
        "status": 200,
        "error_type": "ValueError",
    }
    assert "secret" in json.loads(JsonLogFormatter(tracebacks=True).format(record))["traceback"]


# -- the handler --------------------------------------------------------------------------


def test_off_the_loop_each_line_is_written_at_once(logger: Any) -> None:
    log, stream, _ = logger
    log.info("one")
    assert [x["message"] for x in stream.lines()] == ["one"]
    log.info("two")
    assert [x["message"] for x in stream.lines()] == ["one", "two"]


def test_on_the_loop_a_turns_lines_are_written_together_at_its_end(logger: Any) -> None:
    log, stream, _ = logger

    async def main() -> tuple[str, int]:
        for i in range(5):
            log.info("line %d", i)
        during = stream.getvalue()
        await asyncio.sleep(0)  # the turn ends; the scheduled write runs
        await asyncio.sleep(0)
        return during, stream.writes

    during, writes = asyncio.run(main())
    assert during == ""
    assert writes == 1
    assert [x["message"] for x in stream.lines()] == [f"line {i}" for i in range(5)]


def test_a_thread_writes_what_the_loop_kept_first(logger: Any) -> None:
    log, stream, _ = logger

    async def main() -> None:
        log.info("loop first")
        worker = threading.Thread(target=log.info, args=("thread second",))
        worker.start()
        worker.join()
        log.info("loop third")
        await asyncio.sleep(0)

    asyncio.run(main())
    assert [x["message"] for x in stream.lines()] == ["loop first", "thread second", "loop third"]


def _log_on_a_loop_that_stops(log: logging.Logger, message: str) -> None:
    """Log ``message`` on a loop that ends with that turn (its scheduled write never runs)."""
    loop = asyncio.new_event_loop()

    def log_and_stop() -> None:
        log.info(message)
        loop.stop()

    try:
        loop.call_soon(log_and_stop)
        loop.run_forever()
    finally:
        loop.close()


def test_flush_writes_what_a_stopped_loop_left(logger: Any) -> None:
    log, stream, handler = logger
    _log_on_a_loop_that_stops(log, "kept")
    assert stream.getvalue() == ""
    handler.flush()
    assert [x["message"] for x in stream.lines()] == ["kept"]


def test_another_loop_schedules_its_own_write(logger: Any) -> None:
    log, stream, _ = logger
    _log_on_a_loop_that_stops(log, "left by a closed loop")

    async def main() -> None:
        log.info("on a new loop")
        await asyncio.sleep(0)

    asyncio.run(main())
    assert [x["message"] for x in stream.lines()] == ["left by a closed loop", "on a new loop"]


def test_a_broken_stream_is_reported_not_raised(
    logger: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    log, stream, _ = logger
    stream.close()
    monkeypatch.setattr(logging, "raiseExceptions", True)
    log.info("into a closed stream")  # handleError prints, never raises
    assert "ValueError" in capsys.readouterr().err


def test_configure_logging_owns_the_root_logger(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    monkeypatch.setattr(root, "level", root.level)
    for name in ("_srcfile", "logThreads", "logProcesses", "logMultiprocessing"):
        monkeypatch.setattr(logging, name, getattr(logging, name))
    configure_logging("debug")
    (handler,) = root.handlers
    assert isinstance(handler, JsonLinesHandler)
    assert isinstance(handler.formatter, JsonLogFormatter) and handler.formatter.tracebacks
    assert root.level == logging.DEBUG
    record = logging.getLogger("releasegate.x").makeRecord(
        "releasegate.x", logging.INFO, "f.py", 1, "m", (), None
    )
    assert record.threadName is None and record.process is None
