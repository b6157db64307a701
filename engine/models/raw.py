"""Evidence objects that stay the JSON text they arrived as until something reads into them.

A pipeline sends the same attestation bundles and scanner reports with every decision, and
on a warm request they are only named: the verification cache and the scan memo look their
results up by a digest and never read the documents. Parsing the 25 KB of a typical body's
evidence into Python objects only to hash them again was the largest item left in the
service's CPU per decision (docs/benchmarks.md, round 12). :class:`RawObject` keeps a piece
of the body as its bytes: its :attr:`~RawObject.digest` is the SHA-256 of those bytes, and
:attr:`~RawObject.value` parses them (once) when a cache misses.

Evidence fields hold either form (:data:`EvidenceObject`): the service's decision route
reads bodies lazily (:mod:`engine.api.lazy_body`); everything else (the CLI, the FastAPI
declaration, tests) passes dicts. Both forms dump to the same dict, and every consumer
reads them through :func:`object_value` and :func:`object_key`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Annotated, Any, TypeAlias, final

from pydantic import GetCoreSchemaHandler, WithJsonSchema
from pydantic_core import core_schema

from engine import jsonfast


class UnreadableEvidence(Exception):  # noqa: N818 - a signal to the route, not an error
    """A raw evidence object's text could not be parsed after all.

    The lazy reader checks a body's syntax but not everything the eager reader refuses
    (bad UTF-8 inside a string, nesting beyond the parser's depth): such a body is read
    again eagerly, which answers as it always did (:func:`engine.api.hot_routes.decide`).
    """


@final
class RawObject:
    """A JSON object as the text it was read from; parsed on first use, then kept."""

    __slots__ = ("_digest", "_value", "text")

    def __init__(self, text: bytes) -> None:
        self.text = text
        self._value: dict[str, Any] | None = None
        self._digest: str | None = None

    @property
    def value(self) -> dict[str, Any]:
        """The parsed object (as :func:`engine.jsonfast.loads` reads the whole body)."""
        value = self._value
        if value is None:
            try:
                parsed = jsonfast.loads(self.text)
            except (ValueError, RecursionError) as exc:
                raise UnreadableEvidence(str(exc)) from exc
            if not isinstance(parsed, dict):
                raise UnreadableEvidence(f"expected a JSON object, not {type(parsed).__name__}")
            self._value = value = parsed
        return value

    @property
    def parsed(self) -> bool:
        """Whether :attr:`value` has been read (a warm request never reads it)."""
        return self._value is not None

    @property
    def digest(self) -> str:
        """``t`` + hex SHA-256 of the text: equal texts, equal digests (an equal object
        written differently gets another digest: a cache miss, never a wrong hit)."""
        digest = self._digest
        if digest is None:
            self._digest = digest = "t" + hashlib.sha256(self.text).hexdigest()
        return digest

    def __repr__(self) -> str:
        return f"RawObject({len(self.text)} bytes)"

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        """Accepted as itself; dumped as its parsed value, so a request dumps the same
        whichever way its evidence was read."""
        return core_schema.is_instance_schema(
            cls,
            serialization=core_schema.plain_serializer_function_ser_schema(
                _value_of, when_used="always"
            ),
        )


def _value_of(obj: RawObject) -> dict[str, Any]:
    return obj.value


class _DictOrRaw:
    """The schema of :data:`EvidenceObject`: a raw object as itself, else a dict, and the
    dict's error for anything else (not one error per member of the union)."""

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.union_schema(
            [handler.generate_schema(RawObject), handler.generate_schema(dict[str, Any])],
            custom_error_type="dict_type",
        )


EvidenceObject = Annotated[
    dict[str, Any] | RawObject,
    _DictOrRaw,
    WithJsonSchema({"type": "object", "additionalProperties": True}),
]
"""An evidence document (attestation, scanner report): a parsed dict, or a raw object."""


EvidenceDocument: TypeAlias = Mapping[str, Any] | RawObject
"""What the evidence consumers accept: any mapping (tests, the CLI) or a raw object."""


def object_value(obj: EvidenceDocument) -> Mapping[str, Any]:
    """The document as a dict (a raw object is parsed here; :class:`UnreadableEvidence`
    when its text cannot be)."""
    return obj.value if isinstance(obj, RawObject) else obj


def object_key(obj: EvidenceDocument, *, sort_keys: bool = False) -> str | None:
    """A cache key naming the document: its text's digest, or its value's fingerprint
    (:func:`engine.jsonfast.fingerprint`, ``sort_keys`` as asked). The two never collide
    (``t`` against ``o``/``j`` prefixes): the same document read both ways is two entries."""
    if isinstance(obj, RawObject):
        return obj.digest
    return jsonfast.fingerprint(obj, sort_keys=sort_keys)


__all__ = [
    "EvidenceDocument",
    "EvidenceObject",
    "RawObject",
    "UnreadableEvidence",
    "object_key",
    "object_value",
]
