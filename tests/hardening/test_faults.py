"""Fault injection: OPA killed under load or hanging, Prometheus down or slow, the log
database locked, full or read-only, the signing key missing or unreadable at start.

Every answer under a fault is the normal verdict, a pause naming the fault, or a 503
without a verdict; never an allow that would not be; the log verifies afterwards and holds
every decision a client received (no partial record)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hardening import faults
from hardening.figures import Figures


def _ok(report: faults.FaultReport) -> None:
    assert report.problems == [], report.problems
    assert report.fail_open == 0
    assert report.audit is not None and report.audit.intact


def test_opa_killed_under_concurrent_load(tmp_path: Path, figures: Figures) -> None:
    report = faults.opa_killed_under_load(tmp_path, figures, threads=8, kills=1)
    _ok(report)
    assert report.details["restarts"] >= 1
    assert report.answers > 0


def test_opa_hanging_times_out_to_pause_and_recovers(tmp_path: Path, figures: Figures) -> None:
    report = faults.opa_hanging(tmp_path, figures, threads=4)
    _ok(report)
    assert report.fault_answers >= 4 * 3  # every answer while stopped named the fault


@pytest.mark.parametrize("mode", ["down", "slow"])
def test_prometheus_down_or_slow_pauses_with_slo_unavailable(
    tmp_path: Path, figures: Figures, mode: str
) -> None:
    report = faults.prometheus_unavailable(tmp_path, figures, mode=mode)
    _ok(report)
    assert report.fault_answers == report.answers == 3


def test_database_locked_beyond_busy_timeout_is_503_without_record(
    tmp_path: Path, figures: Figures
) -> None:
    report = faults.database_locked(tmp_path, figures)
    _ok(report)
    assert report.fault_answers == 1


def test_database_full_is_503_without_record(tmp_path: Path, figures: Figures) -> None:
    report = faults.database_full(tmp_path, figures)
    _ok(report)
    assert report.fault_answers == 2


def test_database_read_only_is_503_without_record(tmp_path: Path, figures: Figures) -> None:
    report = faults.database_readonly(tmp_path, figures)
    _ok(report)
    assert report.fault_answers == 2


@pytest.fixture(scope="module")
def served_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return faults.served_state(tmp_path_factory.mktemp("served-once"))


EXPECTED = {
    "missing": "is missing, but the key ring lists 1 earlier key",
    "directory": "is unreadable: Is a directory",
    "corrupt": "is invalid",
    "truncated": "is invalid",
    "group_readable": "is readable by others",
}


@pytest.mark.parametrize("case", faults.KEY_CASES)
def test_serve_refuses_a_missing_or_unreadable_signing_key(
    tmp_path: Path, figures: Figures, served_once: Path, case: str
) -> None:
    code, stderr = faults.signing_key_at_start(tmp_path, figures, case, template=served_once)
    assert code == 2, stderr
    assert stderr.startswith("error: ") and EXPECTED[case] in stderr
    assert "signing-key.pem" in stderr and "Traceback" not in stderr
