"""Typed, located access to untrusted JSON: every wrong type becomes an ``InputError``.

The parsers never index raw ``dict``/``list`` values. They wrap the report in a
:class:`Node` and ask for what they expect (``opt_str``, ``items`` ...); a value of the
wrong JSON type raises :class:`~engine.errors.InputError` naming the report and the field
(``evidence.scans[2].report.Results[0].Vulnerabilities[3].Severity``), so no
``TypeError``/``KeyError``/``AttributeError`` can escape a parser.

Absent keys and JSON ``null`` are treated alike: "not given".
"""

from __future__ import annotations

import math
from typing import NoReturn

from engine.errors import FieldError, InputError

_JSON_TYPE_NAMES: dict[type, str] = {
    dict: "an object",
    list: "an array",
    str: "a string",
    bool: "a boolean",
    int: "a number",
    float: "a number",
    type(None): "null",
}


def json_type_name(value: object) -> str:
    """The JSON name of a Python value's type, for error messages."""
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def input_error(report: str, loc: str, problem: str) -> InputError:
    """An ``InputError`` for one field of one report (``report`` is ``evidence.scans[i]``).

    The message names the report and the field relative to it
    (``evidence.scans[2]: Results[0].Severity: expected a string, got a number``); the
    ``FieldError`` carries the full location.
    """
    inside = loc.removeprefix(f"{report}.report.") if loc != f"{report}.report" else "report"
    return InputError(f"{report}: {inside}: {problem}", errors=[FieldError(loc, problem)])


class Node:
    """One value inside a report, with its location for error messages."""

    __slots__ = ("value", "loc", "report")

    def __init__(self, value: object, loc: str, report: str) -> None:
        self.value = value
        self.loc = loc
        self.report = report

    @classmethod
    def root(cls, value: object, report: str) -> Node:
        """Wrap a whole report found at ``report`` (e.g. ``evidence.scans[0]``)."""
        return cls(value, f"{report}.report", report)

    def fail(self, problem: str) -> NoReturn:
        """Raise an ``InputError`` about this value."""
        raise input_error(self.report, self.loc, problem)

    def _expected(self, what: str) -> NoReturn:
        self.fail(f"expected {what}, got {json_type_name(self.value)}")

    @property
    def present(self) -> bool:
        """True unless the value is absent or ``null``."""
        return self.value is not None

    # -- objects -----------------------------------------------------------------

    def is_obj(self) -> bool:
        """True if the value is a JSON object."""
        return isinstance(self.value, dict)

    def child(self, key: str) -> Node:
        """The member ``key`` of an object (absent if this value is absent)."""
        if self.value is None:
            return Node(None, f"{self.loc}.{key}", self.report)
        if not isinstance(self.value, dict):
            self._expected("an object")
        return Node(self.value.get(key), f"{self.loc}.{key}", self.report)

    def require_obj(self) -> Node:
        """This value, which must be an object."""
        if not isinstance(self.value, dict):
            self._expected("an object")
        return self

    def keys(self) -> list[str]:
        """The member names of an object (absent: none)."""
        if self.value is None:
            return []
        if not isinstance(self.value, dict):
            self._expected("an object")
        return [str(key) for key in self.value]

    def has(self, key: str) -> bool:
        """True if this is an object with a non-null member ``key``."""
        return isinstance(self.value, dict) and self.value.get(key) is not None

    # -- arrays ------------------------------------------------------------------

    def items(self) -> list[Node]:
        """The elements of an array; an absent value is an empty array."""
        if self.value is None:
            return []
        if not isinstance(self.value, list):
            self._expected("an array")
        return [Node(v, f"{self.loc}[{i}]", self.report) for i, v in enumerate(self.value)]

    def require_items(self) -> list[Node]:
        """The elements of an array that must be present."""
        if self.value is None:
            self.fail("is required")
        return self.items()

    def str_items(self) -> list[str]:
        """An array of strings (absent: empty); empty strings are dropped."""
        out = []
        for item in self.items():
            text = item.opt_str()
            if text is not None:
                out.append(text)
        return out

    # -- scalars -----------------------------------------------------------------

    def opt_str(self) -> str | None:
        """A string, or ``None`` when absent; empty or blank strings read as absent."""
        if self.value is None:
            return None
        if not isinstance(self.value, str):
            self._expected("a string")
        text = self.value.strip()
        return text or None

    def req_str(self) -> str:
        """A non-empty string that must be present."""
        text = self.opt_str()
        if text is None:
            self.fail("is required (a non-empty string)")
        return text

    def opt_float(self, *, numeric_str: bool = False) -> float | None:
        """A finite number (optionally also a numeric string), or ``None`` when absent."""
        value = self.value
        if value is None:
            return None
        if isinstance(value, str) and numeric_str:
            if not value.strip():
                return None
            try:
                number = float(value)
            except ValueError:
                self.fail(f"expected a number, got the string {value[:40]!r}")
            if not math.isfinite(number):
                self.fail("expected a finite number")
            return number
        if isinstance(value, bool) or not isinstance(value, int | float):
            self._expected("a number")
        if not math.isfinite(value):
            self.fail("expected a finite number")
        return float(value)

    def opt_scalar_text(self) -> str | None:
        """A string, number or boolean rendered as text (for metadata), else ``None``."""
        value = self.value
        if value is None:
            return None
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float | str):
            text = str(value).strip()
            return text or None
        self._expected("a string or a number")
