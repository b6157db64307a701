"""The benchmark's process accounting: which processes of a target's tree are OPA."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from benchmarks.procs import named, process_tree


def test_named_finds_the_opa_processes_of_a_tree(opa_binary: Path) -> None:
    # A shell whose child is a real `opa` (the shape of the service and its managed OPA).
    parent = subprocess.Popen(  # noqa: S603 - fixed argv
        ["/bin/sh", "-c", f"'{opa_binary}' run --server --addr 127.0.0.1:0 & wait"]
    )
    try:
        tree: list[int] = []
        for _ in range(100):
            tree = process_tree(parent.pid)
            if named(tree, "opa"):
                break
            time.sleep(0.05)
        opa = named(tree, "opa")
        assert len(opa) == 1 and opa[0] != parent.pid
        assert named([parent.pid, os.getpid()], "opa") == []
        assert named([2**22 + 12345], "opa") == []  # no such process: skipped, no error
    finally:
        for pid in named(process_tree(parent.pid), "opa"):
            os.kill(pid, 15)
        parent.wait(timeout=10)
