"""Scenario cases: ``tests/cases/*.yaml``, run through the real pipeline and the real OPA.

Each case is ``{note, request, want_verdict, want_reasons}`` plus optional ``now`` (RFC 3339),
``config`` (a deep-merge patch over the default policy data), ``approvals`` (approval records,
expiry relative to ``now``), ``slo`` (the SLO section the fake SLO provider returns),
``want_warnings`` and ``engine: unavailable``. Evidence is real: attestations and scans name
files under ``tests/assets/`` (``{asset: PATH}``), verified and parsed by the production
providers.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from engine.inputs.base import FactProviders
from engine.inputs.provenance import ProvenanceVerifier
from engine.inputs.providers import ScanReports, SigstoreProvenance
from engine.models.approvals import ApprovalFact, ApprovalsSection
from engine.models.common import SectionStatus
from engine.models.inputs import ArtifactFacts, ReleaseFacts
from engine.models.slo import SloSection

CASES_DIR = Path(__file__).resolve().parent
ASSETS = CASES_DIR.parent / "assets"
DEFAULT_NOW = "2026-11-26T12:00:00Z"
_DURATION = re.compile(r"^([+-])(\d+)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Case:
    """One scenario case loaded from YAML."""

    name: str
    note: str
    request: dict[str, Any]
    want_verdict: str
    want_reasons: frozenset[str]
    want_warnings: frozenset[str] | None = None
    now: str = DEFAULT_NOW
    config: dict[str, Any] = field(default_factory=dict)
    approvals: list[dict[str, Any]] = field(default_factory=list)
    slo: dict[str, Any] | None = None
    engine: str = "opa"


def load_cases() -> list[Case]:
    """Every case in every YAML file of this folder (a file holds a list of cases)."""
    cases: list[Case] = []
    for path in sorted(CASES_DIR.glob("*.yaml")):
        for raw in yaml.safe_load(path.read_text()):
            warnings = raw.get("want_warnings")
            cases.append(
                Case(
                    name=f"{path.stem}/{raw['name']}",
                    note=raw["note"],
                    request=raw["request"],
                    want_verdict=raw["want_verdict"],
                    want_reasons=frozenset(raw.get("want_reasons", [])),
                    want_warnings=None if warnings is None else frozenset(warnings),
                    now=raw.get("now", DEFAULT_NOW),
                    config=raw.get("config", {}),
                    approvals=raw.get("approvals", []),
                    slo=raw.get("slo"),
                    engine=raw.get("engine", "opa"),
                )
            )
    return cases


def now_ns(case: Case) -> int:
    """The case's decision time in nanoseconds."""
    return int(datetime.fromisoformat(case.now.replace("Z", "+00:00")).timestamp()) * 10**9


def _offset_ns(value: str) -> int:
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f"bad relative time {value!r} (want e.g. +24h or -1h)")
    sign = 1 if match.group(1) == "+" else -1
    return sign * int(match.group(2)) * _UNITS[match.group(3)] * 10**9


def _resolve_assets(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"asset"}:
            text = (ASSETS / value["asset"]).read_text()
            return (
                json.loads(text.splitlines()[0])
                if value["asset"].endswith(".jsonl") or value["asset"].endswith(".slsa")
                else json.loads(text)
            )
        return {k: _resolve_assets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_assets(v) for v in value]
    return value


def resolved_request(case: Case) -> dict[str, Any]:
    """The case's request with ``{asset: PATH}`` references replaced by the files' JSON."""
    resolved: dict[str, Any] = _resolve_assets(copy.deepcopy(case.request))
    return resolved


def deep_merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """``patch`` over ``base``; objects merge, everything else replaces."""
    out = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def policy_dir_for(config: dict[str, Any], policies: Path, workdir: Path) -> Path:
    """A copy of ``policies/`` whose policy data carries the case's config patch."""
    key = json.dumps(config, sort_keys=True)
    target = workdir / f"policies-{abs(hash(key)):x}"
    if target.exists():
        return target
    shutil.copytree(policies, target, ignore=shutil.ignore_patterns("*_test.rego", "schema"))
    data_file = target / "releasegate" / "config" / "data.json"
    data_file.write_text(json.dumps(deep_merge(json.loads(data_file.read_text()), config)))
    return target


class FixedApprovals:
    """The approval store of a case: records given in YAML, relative to the case's time."""

    def __init__(self, case: Case) -> None:
        self._case = case

    def collect(self, release: ReleaseFacts, artifact: ArtifactFacts) -> ApprovalsSection:
        """The case's records, defaulting to this release, artifact and environment."""
        base = now_ns(self._case)
        records = []
        for i, raw in enumerate(self._case.approvals):
            raw = dict(raw)
            expires = _offset_ns(raw.pop("expires", "+24h"))
            records.append(
                ApprovalFact(
                    id=raw.pop("id", f"ap-{i}"),
                    kind=raw.pop("kind", "approve"),
                    approver=raw.pop("approver"),
                    approver_roles=raw.pop("roles", ["approver"]),
                    release_id=raw.pop("release_id", release.id),
                    artifact_digest=raw.pop("artifact_digest", artifact.digest),
                    environment=raw.pop("environment", release.environment),
                    revokes=raw.pop("revokes", None),
                    created_ns=base - 3600 * 10**9,
                    expires_ns=base + expires,
                )
            )
        return ApprovalsSection(status=SectionStatus.OK, records=records)


class FixedSlo:
    """The SLO state of a case (``missing`` when the case gives none)."""

    def __init__(self, case: Case) -> None:
        self._section = (
            SloSection.model_validate(case.slo)
            if case.slo is not None
            else SloSection(status=SectionStatus.MISSING)
        )

    def collect(self, release: ReleaseFacts, *, now_ns: int) -> SloSection:
        """The fixed section."""
        return self._section


def providers_for(case: Case, verifier: ProvenanceVerifier) -> FactProviders:
    """Real provenance and scan providers; the case's approvals and SLO state."""
    return FactProviders(
        provenance=SigstoreProvenance(verifier),
        vulnerabilities=ScanReports(),
        slo=FixedSlo(case),
        approvals=FixedApprovals(case),
    )
