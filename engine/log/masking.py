"""Masking of the stored input document before it is hashed and signed (OPA ``mask.go``).

A rule names a JSON-pointer-like path rooted at the record (``/input/...``); a ``*``
segment matches every key of an object or every element of an array. Two operations:

* ``remove``: the value is deleted; its concrete path is listed in the record's ``erased``;
* ``upsert``: the value is replaced by the rule's ``value`` (default ``"**REDACTED**"``);
  its concrete path is listed in ``masked``.

Masking happens before canonicalization, so the record hash and signature cover the
masked document and the lists of what was masked. Paths that match nothing are no-ops.
"""

from __future__ import annotations

import copy
import enum
from dataclasses import dataclass, field
from typing import Any

from engine.errors import ConfigError
from engine.jsonfast import deep_copy

REDACTED = "**REDACTED**"


class MaskOp(enum.StrEnum):
    """What a rule does to the values it matches."""

    REMOVE = "remove"
    UPSERT = "upsert"


def _unescape(segment: str) -> str:
    return segment.replace("~1", "/").replace("~0", "~")


def _escape(segment: str) -> str:
    return segment.replace("~", "~0").replace("/", "~1")


@dataclass(frozen=True)
class MaskRule:
    """One masking rule: ``op`` applied at ``path``."""

    path: str
    op: MaskOp = MaskOp.REMOVE
    value: Any = field(default=REDACTED)

    def __post_init__(self) -> None:
        if not self.path.startswith("/") or self.path == "/":
            raise ConfigError(f"mask path {self.path!r} must start with '/' and name a field")

    @property
    def segments(self) -> list[str]:
        """The path's unescaped segments."""
        return [_unescape(s) for s in self.path[1:].split("/")]

    @classmethod
    def parse(cls, spec: object) -> MaskRule:
        """From config: ``"/path"`` (remove) or ``{"op", "path", "value"?}``."""
        if isinstance(spec, str):
            return cls(spec)
        if isinstance(spec, dict) and isinstance(spec.get("path"), str):
            try:
                op = MaskOp(spec.get("op", "remove"))
            except ValueError as exc:
                raise ConfigError(f"mask op {spec.get('op')!r}: use remove or upsert") from exc
            return cls(spec["path"], op, spec.get("value", REDACTED))
        raise ConfigError(f"mask rule {spec!r}: expected a path or {{op, path, value}}")


@dataclass(frozen=True)
class MaskResult:
    """The masked document and the concrete paths each operation touched."""

    document: dict[str, Any]
    erased: list[str]
    masked: list[str]


def _apply(node: Any, segments: list[str], prefix: str, rule: MaskRule, hits: list[str]) -> None:
    head, rest = segments[0], segments[1:]
    if isinstance(node, dict):
        keys = list(node) if head == "*" else [head] if head in node else []
    elif isinstance(node, list):
        if head == "*":
            keys = list(range(len(node)))
        elif head.isdigit() and int(head) < len(node):
            keys = [int(head)]
        else:
            keys = []
    else:
        return
    # NOTE: delete array elements from the end so earlier indexes stay valid.
    for key in sorted(keys, reverse=isinstance(node, list)):
        path = f"{prefix}/{_escape(str(key))}"
        if rest:
            _apply(node[key], rest, path, rule, hits)
        elif rule.op is MaskOp.REMOVE:
            del node[key]
            hits.append(path)
        else:
            node[key] = copy.deepcopy(rule.value)
            hits.append(path)


def apply_masks(document: dict[str, Any], rules: list[MaskRule]) -> MaskResult:
    """Apply ``rules`` in order to a deep copy of ``document``."""
    doc = deep_copy(document)
    erased: list[str] = []
    masked: list[str] = []
    for rule in rules:
        hits: list[str] = []
        _apply(doc, rule.segments, "", rule, hits)
        (erased if rule.op is MaskOp.REMOVE else masked).extend(sorted(hits))
    return MaskResult(doc, erased, masked)
