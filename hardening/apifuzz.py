"""schemathesis against the served OpenAPI: every operation, every role, both data modes.

Generated requests (positive: valid per the schema; negative: schema-violating) are sent
over real HTTP to a served app with each role's token and no token. Oracles, checked by
:func:`judge` on every answer:

1. never a 5xx (schemathesis ``not_a_server_error``);
2. schema-violating data is rejected (``negative_data_rejection``; never a 2xx);
3. no ``allow`` from an invalid request: a decision request whose attestations are not
   the one verifiable corpus bundle (schemathesis invents them) must not be allowed, and a
   negative case never carries a verdict at all;
4. every 4xx is in the one error shape ``{code, message, errors}``.

Schema-conformance findings of documented-but-unlisted statuses (e.g. a 404 from an
unknown decision id) are counted as notes, not failures.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    negative_data_rejection,
    not_a_server_error,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup

from hardening.figures import Figures

ROLES_AND_ANONYMOUS = ("ci", "admission", "rollout", "approver", "auditor", "admin", None)


@dataclass
class ApiFuzzResult:
    """Failures found (the run passes when ``failures`` is empty) and per-op counts."""

    failures: list[str] = field(default_factory=list)
    notes: dict[str, int] = field(default_factory=dict)
    cases: dict[str, int] = field(default_factory=dict)


def _verifiable(attestation: Any, reference: dict[str, Any]) -> bool:
    return bool(attestation == reference)


def _unset(value: Any) -> bool:
    return type(value).__name__ == "NotSet"


def _negative_locations(case: Any) -> set[str]:
    components = case.meta.components if case.meta is not None else {}
    return {
        str(getattr(loc, "value", loc))
        for loc, info in components.items()
        if info.mode is GenerationMode.NEGATIVE
    }


def _negative_body(case: Any) -> bool:
    """The case's body (not only a header we override, or a query) violates the schema."""
    components = case.meta.components if case.meta is not None else {}
    return any(
        getattr(loc, "value", loc) == "body" and info.mode is GenerationMode.NEGATIVE
        for loc, info in components.items()
    )


def judge(
    op_label: str, negative_body: bool, body: Any, status: int, answer: Any,
    reference_bundle: dict[str, Any],
) -> list[str]:  # fmt: skip
    """Oracles 3 and 4 (schemathesis checks 1 and 2); returns the failures."""
    out: list[str] = []
    if 400 <= status < 500 and not (
        isinstance(answer, dict) and {"code", "message", "errors"} <= set(answer)
    ):
        out.append(f"{op_label}: {status} outside the error shape: {str(answer)[:200]}")
    verdict = answer.get("verdict") if isinstance(answer, dict) else None
    if negative_body and status < 300 and op_label == "POST /v1/decisions":
        out.append(f"{op_label}: negative data answered {status} with verdict {verdict}")
    if verdict == "allow" and op_label == "POST /v1/decisions" and isinstance(body, dict):
        atts = (body.get("evidence") or {}).get("attestations") or []
        if any(not _verifiable(a, reference_bundle) for a in atts):
            out.append(f"{op_label}: allow with an invented attestation: {str(body)[:300]}")
    return out


@dataclass(frozen=True)
class _Run:
    base_url: str
    examples: int
    derandomize: bool
    reference_bundle: dict[str, Any]
    figures: Figures
    result: ApiFuzzResult
    on_case: Callable[[], None] | None


def _fuzz_one(run: _Run, op: Any, mode: GenerationMode, role: str | None, token: str) -> None:
    label = f"{op.method.upper()} {op.path}"
    headers = {"Authorization": f"Bearer {token}"} if role else {}
    key = f"{label} [{role or 'anonymous'}, {mode.value}]"
    figures, result = run.figures, run.result

    @settings(
        max_examples=run.examples, deadline=None, database=None, derandomize=run.derandomize,
        suppress_health_check=list(HealthCheck), report_multiple_bugs=False,
    )  # fmt: skip
    @given(case=op.as_strategy(generation_mode=mode))
    def one(case: Any) -> None:
        response = case.call(base_url=run.base_url, headers=headers, timeout=60)
        result.cases[key] = result.cases.get(key, 0) + 1
        figures.api_cases[key] = figures.api_cases.get(key, 0) + 1
        if run.on_case is not None:
            run.on_case()
        try:
            case.validate_response(
                response, checks=[not_a_server_error, negative_data_rejection], headers=headers
            )
        except (FailureGroup, AssertionError) as exc:
            failures = list(exc.exceptions) if isinstance(exc, FailureGroup) else [exc]
            for failure in failures:
                title = str(getattr(failure, "title", failure))
                if "Schema-violating request accepted" in title and _negative_locations(case) <= {
                    "query",
                    "header",
                }:
                    # An unknown or repeated query parameter (the last value wins, as in
                    # every HTTP framework), or a header we override: not an input error.
                    note = f"schema-violating query accepted on {label} (ignored/last wins)"
                    result.notes[note] = result.notes.get(note, 0) + 1
                    continue
                what = (
                    case.body
                    if case.body is not None and not _unset(case.body)
                    else {"query": case.query, "path": case.path_parameters}
                )
                result.failures.append(f"{key}: {title}: {what!r:.300}")
        if response.status_code >= 500:
            figures.api_server_errors += 1
        try:
            case.validate_response(response, checks=[status_code_conformance], headers=headers)
        except (FailureGroup, AssertionError):
            note = f"undocumented status {response.status_code} on {label}"
            result.notes[note] = result.notes.get(note, 0) + 1
        try:
            answer = json.loads(response.content) if response.content else None
        except ValueError:
            answer = None
        negative = _negative_body(case)
        problems = judge(
            label, negative, case.body, response.status_code, answer, run.reference_bundle
        )
        if any("allow" in p for p in problems):
            figures.api_invalid_allowed += 1
        result.failures.extend(f"[{role}] {p}" for p in problems)

    try:
        # Hypothesis prints "reproduce with @seed(...)" for the caught Unsatisfiable.
        with contextlib.redirect_stdout(io.StringIO()):
            one()
    except Unsatisfiable:
        # An operation without parameters or body has no schema-violating variant.
        result.notes[f"no {mode.value} data for {label}"] = 1


def fuzz_api(
    base_url: str,
    tokens: dict[str, str],
    figures: Figures,
    *,
    examples: int,
    reference_bundle: dict[str, Any],
    roles: tuple[str | None, ...] = ROLES_AND_ANONYMOUS,
    modes: tuple[GenerationMode, ...] = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE),
    derandomize: bool = False,
    on_case: Callable[[], None] | None = None,
) -> ApiFuzzResult:
    """Run ``examples`` generated cases per (operation, role, mode) against ``base_url``."""
    schema = schemathesis.openapi.from_url(base_url + "/openapi.json")
    result = ApiFuzzResult()
    run = _Run(base_url, examples, derandomize, reference_bundle, figures, result, on_case)
    for loaded in schema.get_all_operations():
        op = loaded.ok()  # type: ignore[union-attr]
        for mode in modes:
            for role in roles:
                _fuzz_one(run, op, mode, role, tokens[role] if role else "")
    for note, count in sorted(result.notes.items()):
        figures.notes.append(f"schemathesis: {note} ({count}x)")
    return result
