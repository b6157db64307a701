"""Run every scenario case through the real pipeline against the real OPA."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.decision import DecisionPipeline
from engine.engines.opa import ManagedOpaEngine, RemoteOpaEngine
from engine.engines.policy_source import PolicySource
from engine.inputs.provenance import ProvenanceVerifier
from engine.models.decision import PolicyInfo
from engine.models.parse import parse_request
from tests.cases.runner import Case, load_cases, now_ns, policy_dir_for, providers_for

POLICIES = Path(__file__).resolve().parents[2] / "policies"
CASES = load_cases()


class _Engines:
    """One managed OPA per distinct policy-data patch, shared by the whole module."""

    def __init__(self, opa: Path, workdir: Path) -> None:
        self._opa = opa
        self._workdir = workdir
        self._engines: dict[Path, ManagedOpaEngine] = {}

    def for_config(self, config: dict[str, object]) -> ManagedOpaEngine:
        policy_dir = policy_dir_for(config, POLICIES, self._workdir)
        if policy_dir not in self._engines:
            self._engines[policy_dir] = ManagedOpaEngine(PolicySource(policy_dir), opa=self._opa)
        return self._engines[policy_dir]

    def close(self) -> None:
        for engine in self._engines.values():
            engine.close()


@pytest.fixture(scope="module")
def engines(opa_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Engines]:
    pool = _Engines(opa_binary, tmp_path_factory.mktemp("case-policies"))
    yield pool
    pool.close()


@pytest.fixture(scope="module")
def verifier() -> ProvenanceVerifier:
    return ProvenanceVerifier.from_settings()


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 30
    reason_codes = {code for case in CASES for code in case.want_reasons}
    assert {"engine_unavailable", "approval_self", "change_freeze", "vuln_critical"} <= reason_codes


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(case: Case, engines: _Engines, verifier: ProvenanceVerifier) -> None:
    if case.engine == "unavailable":
        # An OPA that is not there: a closed unix socket path.
        engine: ManagedOpaEngine | RemoteOpaEngine = RemoteOpaEngine(
            "unix:///nonexistent/opa.sock",
            policy=PolicyInfo(revision="none", digest="sha256:" + "0" * 64),
            timeout=0.5,
        )
    else:
        engine = engines.for_config(case.config)
    pipeline = DecisionPipeline(
        engine=engine, providers=providers_for(case, verifier), clock=lambda: now_ns(case)
    )
    from tests.cases.runner import resolved_request

    decision = pipeline.decide(parse_request(resolved_request(case)), caller="ci-pipeline")

    got_reasons = {r.code for r in decision.reasons}
    assert (decision.verdict.value, got_reasons) == (case.want_verdict, set(case.want_reasons)), (
        f"{case.note}\nreasons: {[r.message for r in decision.reasons]}"
    )
    if case.want_warnings is not None:
        assert {w.code for w in decision.warnings} == set(case.want_warnings)
