"""The managed OPA's private directories: a dead process's are removed, nobody else's."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.engines.opa import ManagedOpaEngine
from engine.engines.policy_source import PolicySource
from engine.engines.workdirs import OWNER_FILE, PREFIX, make_workdir, remove_stale_workdirs
from tests.conftest import POLICIES, REPO


@pytest.fixture(scope="module")
def dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _left(parent: Path, name: str, owner: int | None, *, socket_file: bool = True) -> Path:
    """A directory as an engine leaves it: its owner, a socket file nobody listens on."""
    path = parent / f"{PREFIX}{name}"
    path.mkdir()
    if owner is not None:
        (path / OWNER_FILE).write_text(f"{owner}\n")
    if socket_file:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.bind(str(path / "opa-1.sock"))  # bound, never listening: as after a kill
    (path / "opa-1.log").write_text("")
    return path


@pytest.fixture
def listening(tmp_path: Path, dead_pid: int) -> Iterator[Path]:
    """A directory whose owner id is dead here but whose socket accepts connections (an
    engine in another process namespace sharing this temporary directory)."""
    path = _left(tmp_path, "live", dead_pid, socket_file=False)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path / "opa-1.sock"))
        server.listen()
        yield path


def test_only_a_dead_owners_directory_without_a_listener_is_removed(
    tmp_path: Path, dead_pid: int, listening: Path
) -> None:
    stale = _left(tmp_path, "stale", dead_pid)
    alive = _left(tmp_path, "alive", os.getppid())
    mine = _left(tmp_path, "mine", os.getpid())
    legacy = _left(tmp_path, "legacy", None)  # no owner file: an earlier releasegate
    garbled = _left(tmp_path, "garbled", dead_pid)
    (garbled / OWNER_FILE).write_text("not a pid\n")
    other = tmp_path / "unrelated-dir"
    other.mkdir()
    link = tmp_path / f"{PREFIX}link"
    link.symlink_to(stale)

    assert remove_stale_workdirs(tmp_path) == [stale]
    assert not stale.exists()
    for kept in (alive, mine, legacy, garbled, other, listening):
        assert kept.is_dir()
    assert link.is_symlink()


def test_a_new_workdir_names_its_owner_and_clears_the_stale_ones(
    tmp_path: Path, dead_pid: int
) -> None:
    stale = _left(tmp_path, "stale", dead_pid)
    made = make_workdir(tmp_path)
    assert made.parent == tmp_path and made.name.startswith(PREFIX)
    assert (made / OWNER_FILE).read_text() == f"{os.getpid()}\n"
    assert not stale.exists()
    assert remove_stale_workdirs(tmp_path) == []  # its own is never stale


def test_a_killed_services_directory_is_removed_by_the_next_engine(
    opa_binary: Path, tmp_path: Path
) -> None:
    """``kill -9`` leaves the directory (sockets, log, bundle copy); the next engine made in
    the same place removes it, and keeps its own until it is closed."""
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from engine.engines.opa import ManagedOpaEngine\n"
        "from engine.engines.policy_source import PolicySource\n"
        f"e = ManagedOpaEngine(PolicySource(Path({str(POLICIES)!r})), "
        f"opa=Path({str(opa_binary)!r}), workdir=Path({str(tmp_path)!r}))\n"
        "print(e.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    service = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    try:
        assert service.stdout is not None
        opa_pid = int(service.stdout.readline())
        [left] = list(tmp_path.glob(PREFIX + "*"))
        service.kill()
        service.wait()
        _wait_gone(opa_pid)  # OPA dies with its parent (test_opa.py)
        assert left.is_dir() and (left / OWNER_FILE).read_text() == f"{service.pid}\n"
    finally:
        if service.poll() is None:
            service.kill()
            service.wait()
        if service.stdout is not None:
            service.stdout.close()
    engine = ManagedOpaEngine(PolicySource(POLICIES), opa=opa_binary, workdir=tmp_path)
    try:
        [own] = list(tmp_path.glob(PREFIX + "*"))
        assert own != left and not left.exists()
        assert remove_stale_workdirs(tmp_path) == []
    finally:
        engine.close()
    assert list(tmp_path.glob(PREFIX + "*")) == []


def _wait_gone(pid: int) -> None:
    import time

    deadline = time.monotonic() + 30  # a bound on waiting, never asserted as a duration
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split()[2]
        except FileNotFoundError:
            return
        if state == "Z":
            return
        time.sleep(0.02)
    raise AssertionError(f"OPA {pid} outlived its parent")
