"""The service's log: one JSON object per line on standard error.

Every request writes an access line and every decision a decision line, so at a thousand
decisions a second the log is a measurable part of the service's CPU (docs/benchmarks.md,
round 11: 9-11 % of the app's CPU per decision in process). Three things keep it small:

* :class:`JsonLogFormatter` encodes a line with ``orjson`` (the standard library's encoder
  is the fallback for what orjson refuses or would write as non-ASCII, so a line is
  always ASCII JSON) and formats the time's seconds once per second;
* :class:`JsonLinesHandler` writes the lines logged on an event loop once per turn of the
  loop (one ``write`` for the lines of every request the turn served) instead of one
  ``write`` and ``flush`` per line: on this VM a write is 4 % of a decision's CPU;
* :func:`configure_logging` turns off what the JSON lines never show: the caller's file
  and line, thread, process and process name, which :class:`logging.LogRecord` otherwise
  looks up for every record (the logging HOWTO's "Optimization" section).

The log is for people and log collectors; the decision log (SQLite or PostgreSQL) is the
record. A line logged on the loop reaches the stream at the end of that turn of the loop,
or when the handler is flushed (``logging.shutdown`` at exit, or ``flush()``); a process
killed in between loses the lines of that turn.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from typing import Any, TextIO

import orjson


def dumps_line(doc: dict[str, Any]) -> str:
    """``doc`` as compact ASCII JSON: orjson, or ``json.dumps`` where orjson refuses the
    value (integers beyond 64 bits, non-string keys, lone surrogates) or writes non-ASCII
    text. Values JSON cannot carry are written as ``str(value)``. (orjson writes NaN and
    infinities as ``null``: valid JSON, where the standard library writes ``NaN``.)"""
    try:
        data = orjson.dumps(doc, default=str)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        data = None
    if data is not None and data.isascii():
        return data.decode("ascii")
    return json.dumps(doc, default=str, separators=(",", ":"))


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the record's ``fields``.

    Exceptions are reduced to their type unless ``tracebacks`` (``serve --log-level debug``):
    exception messages may quote request data.
    """

    def __init__(self, *, tracebacks: bool = False) -> None:
        super().__init__()
        self.tracebacks = tracebacks
        self._second: tuple[int, str] = (-1, "")
        """The last whole second formatted, and its text (one tuple: threads share it)."""

    def _timestamp(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        cached = self._second
        if cached[0] != second:
            cached = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
            self._second = cached
        return f"{cached[1]}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record``; ``extra={"fields": {...}}`` adds structured fields."""
        doc: dict[str, Any] = {
            "ts": self._timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            doc.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            doc.setdefault("error_type", record.exc_info[0].__name__)
            if self.tracebacks:
                doc["traceback"] = self.formatException(record.exc_info)
        return dumps_line(doc)


class JsonLinesHandler(logging.StreamHandler[TextIO]):
    """A stream handler that writes the lines an event loop logs once per turn of the loop.

    A record logged where an asyncio loop runs is formatted at once and kept; the first one
    of a turn schedules a write of everything kept (``loop.call_soon``), which runs before
    the loop waits for I/O again. A record logged elsewhere (a worker thread, no loop)
    writes what is kept and then itself, so lines stay in the order they were logged.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self._kept: list[str] = []
        self._scheduled_on: asyncio.AbstractEventLoop | None = None
        """The loop a write is scheduled on (a loop closed before its turn ended keeps the
        mark: another loop still schedules its own write)."""

    def emit(self, record: logging.LogRecord) -> None:
        """Format now; write at the end of the loop's turn (or now, off the loop)."""
        try:
            self._kept.append(self.format(record) + self.terminator)
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            if loop is None:
                self._write_kept()
            elif self._scheduled_on is not loop:
                self._scheduled_on = loop
                loop.call_soon(self._write_at_turn_end)
        except RecursionError:
            raise
        except Exception:  # noqa: BLE001 - logging's own contract: report, never raise
            self.handleError(record)

    def _write_at_turn_end(self) -> None:
        with self.lock:  # type: ignore[union-attr]  # created by Handler.__init__
            self._scheduled_on = None
            self._write_kept()

    def _write_kept(self) -> None:
        if not self._kept:
            return
        text = "".join(self._kept)
        self._kept.clear()
        self.stream.write(text)
        self.stream.flush()

    def flush(self) -> None:
        """Write what is kept, then flush the stream."""
        with self.lock:  # type: ignore[union-attr]
            self._write_kept()
            super().flush()


def configure_logging(level: str) -> None:
    """Root logger: one JSON line per record on standard error, at ``level``."""
    handler = JsonLinesHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter(tracebacks=level == "debug"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # What a LogRecord would look up for every record and these lines never show.
    logging._srcfile = None  # the HOWTO's documented switch
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


__all__ = ["JsonLinesHandler", "JsonLogFormatter", "configure_logging", "dumps_line"]
