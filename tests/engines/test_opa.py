"""The managed OPA engine against the real OPA binary: evaluation, failures, restarts, reload."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from engine.decision import evaluate
from engine.engines.opa import ManagedOpaEngine, find_opa
from engine.engines.policy_source import PolicySource
from engine.errors import BundleError, ConfigError, EngineUnavailable, PolicyEvalError
from engine.models.common import Verdict
from tests.conftest import POLICIES, REPO

INPUT = {
    "schema_version": 1,
    "now_ns": 1795694400000000000,
    "adapter": "cli",
    "release": {"id": "r1", "service": "payments", "environment": "dev", "stage": "deploy"},
    "artifact": {"digest": "sha256:" + "a" * 64},
    "provenance": {"status": "missing", "attestations": []},
    "vulnerabilities": {"status": "missing", "reports": [], "findings": [], "counts": {}},
    "slo": {"status": "missing"},
    "approvals": {"status": "ok", "records": []},
}


def _wait_for(condition: Callable[[], bool], *, limit_s: float = 30.0) -> bool:
    """Poll until ``condition`` holds (a bound on waiting, never an assertion on speed)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def _policy_dir(tmp_path: Path, rego: str) -> Path:
    target = tmp_path / "policy"
    target.mkdir()
    (target / "decision.rego").write_text(rego)
    return target


@contextmanager
def _engine_on(tmp_path: Path, opa: Path, rules: str) -> Iterator[ManagedOpaEngine]:
    """A managed OPA on a one-file policy ``package releasegate`` with ``rules``."""
    eng = ManagedOpaEngine(
        PolicySource(_policy_dir(tmp_path, f"package releasegate\n\n{rules}\n")), opa=opa
    )
    try:
        yield eng
    finally:
        eng.close()


@pytest.fixture()
def engine(opa_binary: Path) -> Iterator[ManagedOpaEngine]:
    eng = ManagedOpaEngine(PolicySource(POLICIES), opa=opa_binary, timeout=1.0)
    yield eng
    eng.close()


def test_evaluates_the_policy_library(engine: ManagedOpaEngine) -> None:
    result = engine.evaluate(INPUT)
    assert result.verdict is Verdict.ALLOW
    assert engine.info.name == "opa"
    assert engine.info.version == "1.22.3"
    assert engine.policy.digest.startswith("sha256:")


def _opa_environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def test_managed_opa_runs_with_the_configured_go_collector_and_processors(
    opa_binary: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOGC", "100")
    monkeypatch.setenv("GOMAXPROCS", "7")
    tuned = ManagedOpaEngine(PolicySource(POLICIES), opa=opa_binary, gogc=400, gomaxprocs=1)
    try:
        assert _opa_environ(tuned.pid)["GOGC"] == "400"
        assert _opa_environ(tuned.pid)["GOMAXPROCS"] == "1"
        assert tuned.evaluate(INPUT).verdict is Verdict.ALLOW
    finally:
        tuned.close()
    inherited = ManagedOpaEngine(PolicySource(POLICIES), opa=opa_binary, gogc=None)
    try:
        assert _opa_environ(inherited.pid)["GOGC"] == "100"
        assert _opa_environ(inherited.pid)["GOMAXPROCS"] == "7"
    finally:
        inherited.close()


def _opa_argv(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


@pytest.mark.parametrize("optimized", [True, False])
def test_read_optimized_store_is_a_flag_of_the_managed_opa_only(
    opa_binary: Path, optimized: bool
) -> None:
    eng = ManagedOpaEngine(PolicySource(POLICIES), opa=opa_binary, read_optimized_store=optimized)
    try:
        assert ("--optimize-store-for-read-speed" in _opa_argv(eng.pid)) is optimized
        # Same answer either way (the policy data is read: the freeze window, the
        # required approvals for prod).
        assert evaluate(eng, INPUT).verdict is Verdict.ALLOW
        prod = {**INPUT, "release": {**INPUT["release"], "environment": "prod"}}
        result = evaluate(eng, prod)
        assert result.verdict is Verdict.PAUSE
        assert "approval_missing" in {r.code for r in result.reasons}
    finally:
        eng.close()


def test_opa_outlives_the_thread_that_started_it(opa_binary: Path) -> None:
    # The service opens its engine (and reloads bundles) in worker threads that exit when
    # idle. OPA is started with a parent-death signal, which Linux sends when the *thread*
    # that forked it exits: OPA must not be forked by such a thread. (It was: 10 s into a
    # run, a token lookup let anyio retire the startup thread and OPA got SIGKILL.)
    made: list[ManagedOpaEngine] = []
    opener = threading.Thread(
        target=lambda: made.append(ManagedOpaEngine(PolicySource(POLICIES), opa=opa_binary))
    )
    opener.start()
    opener.join()
    (eng,) = made
    try:
        first = eng.pid
        reloader = threading.Thread(target=eng.reload, args=(PolicySource(POLICIES),))
        reloader.start()
        reloader.join()
        reloaded = eng.pid
        assert reloaded != first
        # A killed process shows within milliseconds; give it far more before looking.
        assert not _wait_for(lambda: eng._current.popen.poll() is not None, limit_s=1.0)
        assert eng.pid == reloaded and eng.restarts == 0
        assert eng.evaluate(INPUT).verdict is Verdict.ALLOW
    finally:
        eng.close()


def test_a_closed_engine_starts_no_opa(opa_binary: Path) -> None:
    eng = ManagedOpaEngine(PolicySource(POLICIES), opa=opa_binary)
    eng.close()
    with pytest.raises(EngineUnavailable, match="closed"):
        eng.reload(PolicySource(POLICIES))


def test_killed_opa_fails_closed_then_is_restarted(engine: ManagedOpaEngine) -> None:
    old_pid = engine.pid
    os.kill(old_pid, signal.SIGKILL)
    assert _wait_for(lambda: engine._current.popen.poll() is not None)
    # While it is down: pause / engine_unavailable, never allow.
    result = evaluate(engine, INPUT)
    if engine.pid == old_pid:
        assert result.verdict is Verdict.PAUSE
        assert [r.code for r in result.reasons] == ["engine_unavailable"]
    assert _wait_for(lambda: engine.pid != old_pid and engine.healthy)
    assert engine.restarts == 1
    assert engine.evaluate(INPUT).verdict is Verdict.ALLOW


def test_hanging_opa_times_out(engine: ManagedOpaEngine) -> None:
    os.kill(engine.pid, signal.SIGSTOP)
    try:
        with pytest.raises(EngineUnavailable, match="did not answer"):
            engine.evaluate(INPUT)
        result = evaluate(engine, INPUT)
        assert result.verdict is Verdict.PAUSE
        assert result.reasons[0].code == "engine_unavailable"
    finally:
        os.kill(engine.pid, signal.SIGCONT)
    assert engine.evaluate(INPUT).verdict is Verdict.ALLOW


def test_undefined_decision_is_an_error(opa_binary: Path, tmp_path: Path) -> None:
    with _engine_on(tmp_path, opa_binary, "something_else := 1") as eng:
        with pytest.raises(PolicyEvalError, match="undefined"):
            eng.evaluate(INPUT)
        assert evaluate(eng, INPUT).reasons[0].code == "engine_unavailable"


@pytest.mark.parametrize(
    "rego",
    [
        'decision := {"verdict": "maybe", "reasons": [], "warnings": []}',
        'decision := {"verdict": "allow", "reasons": [{"code": "x"}], "warnings": []}',
        'decision := "allow"',
        'decision := {"verdict": "allow", "reasons": [], "warnings": [], "extra": 1}',
    ],
    ids=["unknown-verdict", "reason-without-fields", "not-an-object", "unknown-field"],
)
def test_malformed_decision_is_an_error(opa_binary: Path, tmp_path: Path, rego: str) -> None:
    with (
        _engine_on(tmp_path, opa_binary, rego) as eng,
        pytest.raises(PolicyEvalError, match="malformed"),
    ):
        eng.evaluate(INPUT)


def test_self_contradicting_decision_pauses(opa_binary: Path, tmp_path: Path) -> None:
    rego = (
        'decision := {"verdict": "allow", "warnings": [], "reasons": [{"code": "vuln_critical",'
        ' "verdict": "rollback", "policy": "p", "message": "m"}]}'
    )
    with _engine_on(tmp_path, opa_binary, rego) as eng:
        result = evaluate(eng, INPUT)
    assert result.verdict is Verdict.PAUSE
    assert result.reasons[0].code == "engine_unavailable"
    assert "malformed policy output" in result.reasons[0].message


def test_runtime_error_in_policy_is_engine_unavailable(opa_binary: Path, tmp_path: Path) -> None:
    # Two conflicting values for a complete rule: OPA answers 500 eval_conflict_error.
    rego = (
        'decision := {"verdict": "allow", "reasons": [], "warnings": []} if input.now_ns\n'
        'decision := {"verdict": "pause", "reasons": [], "warnings": []} if input.adapter\n'
    )
    with _engine_on(tmp_path, opa_binary, rego) as eng:
        result = evaluate(eng, INPUT)
    assert result.verdict is Verdict.PAUSE
    assert "HTTP 500" in result.reasons[0].message


def test_signed_committed_bundle_loads_and_foreign_key_is_refused(
    opa_binary: Path, tmp_path: Path
) -> None:
    bundle = REPO / "bundles" / "releasegate.tar.gz"
    key = REPO / "bundles" / "releasegate.pub.pem"
    eng = ManagedOpaEngine(PolicySource(bundle, public_key=key), opa=opa_binary)
    try:
        assert eng.evaluate(INPUT).verdict is Verdict.ALLOW
        assert eng.policy.digest.startswith("sha256:")
    finally:
        eng.close()
    other = tmp_path / "other.pem"
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pub = ec.generate_private_key(ec.SECP256R1()).public_key()
    other.write_bytes(
        pub.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    with pytest.raises(BundleError, match="refused"):
        ManagedOpaEngine(PolicySource(bundle, public_key=other), opa=opa_binary)


def test_reload_swaps_good_bundle_and_keeps_serving_on_bad(
    engine: ManagedOpaEngine, tmp_path: Path
) -> None:
    before = engine.policy
    changed = tmp_path / "changed"
    shutil.copytree(POLICIES, changed)
    (changed / "releasegate" / "extra.rego").write_text("package releasegate.extra\n\nx := 1\n")
    engine.reload(PolicySource(changed))
    assert engine.policy.digest != before.digest
    result = engine.evaluate(INPUT)
    assert result.verdict is Verdict.ALLOW
    assert result.evaluated_policy == engine.policy

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "bad.rego").write_text("package releasegate\n\ndecision := {\n")
    current = engine.policy
    with pytest.raises(BundleError):
        engine.reload(PolicySource(broken))
    assert engine.policy == current
    assert engine.evaluate(INPUT).verdict is Verdict.ALLOW


def test_missing_opa_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELEASEGATE_OPA", "/nonexistent/opa")
    monkeypatch.setenv("RELEASEGATE_TOOLS_DIR", "/nonexistent")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ConfigError, match="scripts/install-opa.sh"):
        find_opa()


def test_opa_dies_with_its_parent(opa_binary: Path) -> None:
    """Regression: a ``kill -9``'d service used to leave its managed OPA running."""
    import subprocess
    import sys

    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from engine.engines.opa import ManagedOpaEngine\n"
        "from engine.engines.policy_source import PolicySource\n"
        f"src = PolicySource(Path({str(POLICIES)!r}))\n"
        f"e = ManagedOpaEngine(src, opa=Path({str(opa_binary)!r}))\n"
        "print(e.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        opa_pid = int(parent.stdout.readline())
        assert Path(f"/proc/{opa_pid}").exists()
        parent.kill()
        parent.wait()

        def gone() -> bool:
            try:
                state = Path(f"/proc/{opa_pid}/stat").read_text().split()[2]
            except FileNotFoundError:
                return True
            return state == "Z"

        assert _wait_for(gone)
    finally:
        if parent.poll() is None:
            parent.kill()
        if parent.stdout is not None:
            parent.stdout.close()
