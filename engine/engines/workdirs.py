"""The managed OPA's private directories (its unix sockets, logs and bundle snapshots).

Each :class:`engine.engines.opa.ManagedOpaEngine` makes one ``releasegate-opa-*`` directory,
by default in the system's temporary directory (a unix socket's path must stay short), and
removes it when closed. A process that is killed (``kill -9``, the out-of-memory killer, a
lost node) cannot remove its own, so each directory names its owner in an ``owner`` file,
and the next engine made in the same place removes the directories whose owner is gone.

A directory is removed only when all of these hold: it is a real directory (not a
symbolic link) of this user; its ``owner`` file names a process id that is not running; and
none of its sockets accepts a connection. The last check keeps a live engine's directory
even when its owner's process id means nothing here (a temporary directory shared with
another process namespace). Directories without an ``owner`` file (made by an earlier
releasegate, or still being made) are left alone.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import stat
import tempfile
from pathlib import Path

_logger = logging.getLogger(__name__)

PREFIX = "releasegate-opa-"
OWNER_FILE = "owner"
CONNECT_TIMEOUT_S = 0.5


def make_workdir(parent: Path | None = None) -> Path:
    """A new private directory under ``parent`` (default: the temporary directory), marked
    with this process's id; the stale ones of dead processes there are removed first."""
    where = parent if parent is not None else Path(tempfile.gettempdir())
    removed = remove_stale_workdirs(where)
    if removed:
        _logger.info(
            "removed %d directories left by managed OPA engines whose process is gone",
            len(removed),
            extra={"directories": [str(path) for path in removed]},
        )
    path = Path(tempfile.mkdtemp(prefix=PREFIX, dir=where))
    (path / OWNER_FILE).write_text(f"{os.getpid()}\n")
    return path


def remove_stale_workdirs(parent: Path) -> list[Path]:
    """Remove the ``releasegate-opa-*`` directories under ``parent`` that a dead process
    left behind (see the module's notes); returns the ones removed."""
    try:
        candidates = sorted(parent.glob(PREFIX + "*"))
    except OSError:
        return []
    removed = []
    for path in candidates:
        if is_stale(path):
            shutil.rmtree(path, ignore_errors=True)
            if not path.exists():
                removed.append(path)
    return removed


def is_stale(path: Path) -> bool:
    """Whether ``path`` is an engine directory whose owner is gone and whose OPA is not
    listening; False whenever that cannot be told."""
    try:
        info = path.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            return False
        owner = int((path / OWNER_FILE).read_text().strip())
    except (OSError, ValueError):
        return False
    if owner == os.getpid() or _running(owner):
        return False
    try:
        sockets = [p for p in path.iterdir() if p.suffix == ".sock"]
    except OSError:
        return False
    return not any(_accepts(sock) for sock in sockets)


def _running(pid: int) -> bool:
    if pid <= 0:
        return True  # not a process id this module wrote: leave it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _accepts(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(CONNECT_TIMEOUT_S)
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True
