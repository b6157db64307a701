"""Policy developer tools around the real OPA: Rego unit tests with coverage, lint, schema."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from engine.engines.opa import find_opa
from engine.errors import PolicyError
from engine.models.inputs import InputDocumentV1

SCHEMA_FILE = Path("schema") / "input.json"


def input_schema_json() -> str:
    """The JSON Schema of the input document, as committed in ``policies/schema/``."""
    return json.dumps(InputDocumentV1.model_json_schema(), indent=2, sort_keys=True) + "\n"


@dataclass(frozen=True)
class PolicyTestReport:
    """The outcome of ``opa test --coverage``."""

    passed: int
    failed: int
    coverage: float
    output: str
    uncovered: dict[str, list[int]]


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)  # noqa: S603
    except (OSError, subprocess.SubprocessError) as exc:
        raise PolicyError(f"cannot run {argv[0]}: {exc}") from exc


def run_policy_tests(policy_dir: Path, *, opa: str | None = None) -> PolicyTestReport:
    """Run ``opa test`` twice: verbose for the people, ``--coverage`` JSON for the figures."""
    binary = str(find_opa(opa))
    verbose = _run([binary, "test", str(policy_dir), "-v"])
    cov = _run([binary, "test", str(policy_dir), "--coverage", "--format", "json"])
    passed = verbose.stdout.count(": PASS")
    failed = verbose.stdout.count(": FAIL") + verbose.stdout.count(": ERROR")
    coverage = 0.0
    uncovered: dict[str, list[int]] = {}
    try:
        report = json.loads(cov.stdout)
        coverage = float(report.get("coverage", 0.0))
        for name, file in report.get("files", {}).items():
            if name.endswith("_test.rego"):
                continue
            lines = sorted(
                {
                    line
                    for span in file.get("not_covered", [])
                    for line in range(span["start"]["row"], span["end"]["row"] + 1)
                }
            )
            if lines:
                uncovered[name] = lines
    except (ValueError, KeyError, TypeError):
        failed = max(failed, 1)
    if verbose.returncode != 0 and failed == 0:
        failed = 1
    return PolicyTestReport(
        passed=passed,
        failed=failed,
        coverage=coverage,
        output=verbose.stdout + verbose.stderr,
        uncovered=uncovered,
    )


def lint_policies(policy_dir: Path, *, opa: str | None = None) -> str:
    """``opa check --strict`` with the input schema; raise ``PolicyError`` with OPA's output."""
    binary = str(find_opa(opa))
    schema = policy_dir / SCHEMA_FILE
    argv = [binary, "check", "--strict", str(policy_dir / "releasegate")]
    if schema.is_file():
        argv[3:3] = ["--schema", str(schema)]
    result = _run(argv)
    if result.returncode != 0:
        raise PolicyError(f"policy check failed:\n{result.stdout}{result.stderr}")
    return result.stdout
