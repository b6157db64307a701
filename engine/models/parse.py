"""Parse untrusted JSON into models, turning validation failures into ``InputError``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from engine.errors import FieldError, InputError
from engine.models.request import DecisionRequestV1

ModelT = TypeVar("ModelT", bound=BaseModel)

MAX_REQUEST_BYTES = 8 * 1024 * 1024


def field_errors(exc: ValidationError, *, prefix: str = "") -> list[FieldError]:
    """One ``FieldError`` per pydantic error, located by a dotted path."""
    out = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"])
        out.append(
            FieldError(f"{prefix}{loc}" if loc else prefix.rstrip(".") or "body", err["msg"])
        )
    return out


def parse_model(model: type[ModelT], data: Any, *, what: str) -> ModelT:
    """Validate ``data`` as ``model``; raise ``InputError`` naming each bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = field_errors(exc)
        first = errors[0] if errors else FieldError("body", "invalid")
        raise InputError(f"invalid {what}: {first.loc}: {first.message}", errors=errors) from exc


def load_json_file(path: Path, *, what: str, max_bytes: int = MAX_REQUEST_BYTES) -> Any:
    """Read a JSON file with a size limit; raise ``InputError`` for unreadable or invalid JSON."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise InputError(f"{what} {path} is {size} bytes; the limit is {max_bytes}")
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise InputError(f"{what} {path} is not valid JSON: {exc}") from exc


def parse_request(data: Any) -> DecisionRequestV1:
    """Validate a decision request document (contract §3)."""
    if not isinstance(data, dict):
        raise InputError("invalid decision request: body: expected a JSON object")
    return parse_model(DecisionRequestV1, data, what="decision request")
