"""Limits on scan reports: size, nesting depth, JSON types, number of findings.

Every report is checked here before a parser looks at it, so the parsers can assume a
bounded tree of plain JSON values. A report that breaks a limit is an ``InputError``
(HTTP 422 / exit 2) naming the report and the offending path.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from engine.errors import FieldError, InputError
from engine.inputs.scans.access import input_error, json_type_name

_MAX_INT = 2**63
"""Larger integers are not JSON numbers any scanner writes (and break float conversion)."""

_Path = tuple[object, str | int] | None
"""A location as a linked list ``(parent, key)``, so walking costs O(1) per node."""


@dataclass(frozen=True)
class ScanLimits:
    """Bounds applied to every scan report and VEX document."""

    max_report_bytes: int = 32 * 1024 * 1024
    """Largest report, in bytes of compact JSON (or of the file, for ``load_scan_file``)."""
    max_findings: int = 50_000
    """Most findings (before de-duplication) across all reports of one request."""
    max_depth: int = 64
    """Deepest nesting of objects and arrays accepted."""

    def __post_init__(self) -> None:
        for name in ("max_report_bytes", "max_findings", "max_depth"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ScanLimits.{name} must be a positive integer, got {value!r}")


def _render(path: _Path, root: str) -> str:
    parts: list[str] = []
    while path is not None:
        parent, key = path
        parts.append(f"[{key}]" if isinstance(key, int) else f".{key}")
        path = parent  # type: ignore[assignment]
    return root + "".join(reversed(parts))


_NOT_UNICODE = "string is not valid Unicode (an unpaired surrogate escape such as \\ud800)"


def _is_unicode(text: str) -> bool:
    """False for strings JSON can carry but UTF-8 cannot: unpaired ``\\uD800``-``\\uDFFF``."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_report(
    report: object, *, report_label: str, limits: ScanLimits, root: str | None = None
) -> None:
    """Raise ``InputError`` unless ``report`` is a JSON object within ``limits``.

    1. Walk the tree iteratively (no recursion): only JSON types, string keys, finite
       numbers, strings UTF-8 can encode, at most ``max_depth`` levels.
    2. Measure the compact JSON encoding against ``max_report_bytes``.
    """
    root = root or f"{report_label}.report"
    if not isinstance(report, dict):
        raise input_error(report_label, root, f"expected an object, got {json_type_name(report)}")
    # 1. Types and depth.
    stack: list[tuple[object, int, _Path]] = [(report, 1, None)]
    while stack:
        value, depth, path = stack.pop()
        if isinstance(value, dict):
            if depth > limits.max_depth:
                raise input_error(
                    report_label, _render(path, root), f"nesting deeper than {limits.max_depth}"
                )
            for key, member in value.items():
                if not isinstance(key, str):
                    raise input_error(report_label, _render(path, root), "object key not a string")
                if not _is_unicode(key):
                    raise input_error(report_label, _render(path, root), _NOT_UNICODE)
                stack.append((member, depth + 1, (path, key)))
        elif isinstance(value, list):
            if depth > limits.max_depth:
                raise input_error(
                    report_label, _render(path, root), f"nesting deeper than {limits.max_depth}"
                )
            for index, member in enumerate(value):
                stack.append((member, depth + 1, (path, index)))
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise input_error(report_label, _render(path, root), "number is not finite")
        elif isinstance(value, int) and not isinstance(value, bool):
            if abs(value) > _MAX_INT:
                raise input_error(report_label, _render(path, root), "integer out of range")
        elif isinstance(value, str):
            if not _is_unicode(value):
                raise input_error(report_label, _render(path, root), _NOT_UNICODE)
        elif value is not None and not isinstance(value, bool):
            raise input_error(
                report_label, _render(path, root), f"not a JSON value ({type(value).__name__})"
            )
    # 2. Size of the compact encoding.
    size = len(json.dumps(report, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    if size > limits.max_report_bytes:
        raise input_error(
            report_label,
            root,
            f"report is {size} bytes, more than the limit of {limits.max_report_bytes}",
        )


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def load_scan_file(
    path: str | os.PathLike[str], *, limits: ScanLimits | None = None
) -> dict[str, object]:
    """Read a scan report or VEX document from a JSON file (for ``check --scan FILE``).

    The file must be at most ``max_report_bytes``, valid UTF-8 JSON (no ``NaN``), an object,
    and nested at most ``max_depth`` deep; anything else is an ``InputError`` naming the file.
    """
    limits = limits or ScanLimits()
    where = str(path)
    file = Path(path)
    try:
        size = file.stat().st_size
        if size > limits.max_report_bytes:
            raise InputError(
                f"scan file {where}: {size} bytes, more than the limit of "
                f"{limits.max_report_bytes}",
                errors=[FieldError(where, "file too large")],
            )
        with file.open("rb") as handle:
            data = handle.read(limits.max_report_bytes + 1)
    except OSError as exc:
        raise InputError(
            f"scan file {where}: cannot read: {exc.strerror or exc}",
            errors=[FieldError(where, "cannot read")],
        ) from exc
    if len(data) > limits.max_report_bytes:
        raise InputError(
            f"scan file {where}: more than {limits.max_report_bytes} bytes",
            errors=[FieldError(where, "file too large")],
        )
    try:
        document = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise InputError(
            f"scan file {where}: not UTF-8 ({exc.reason} at byte {exc.start})",
            errors=[FieldError(where, "not UTF-8")],
        ) from exc
    except json.JSONDecodeError as exc:
        raise InputError(
            f"scan file {where}: invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            errors=[FieldError(where, f"invalid JSON: {exc.msg}")],
        ) from exc
    except (ValueError, RecursionError) as exc:
        raise InputError(
            f"scan file {where}: invalid JSON: {exc}",
            errors=[FieldError(where, "invalid JSON")],
        ) from exc
    if not isinstance(document, dict):
        raise InputError(
            f"scan file {where}: expected a JSON object, got {json_type_name(document)}",
            errors=[FieldError(where, "not a JSON object")],
        )
    check_report(document, report_label=f"scan file {where}", limits=limits, root="$")
    return document
