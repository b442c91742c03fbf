"""Fixtures of the ring tests: child processes that are always stopped, whatever the test did."""

from __future__ import annotations

import contextlib
import subprocess

import pytest
from helpers import DEADLINE, kill_tree, spawn_python
from ring.ringkit import TESTS_DIR


@pytest.fixture
def procs():
    """`procs(code)` starts `python -c code` with ring.ringkit importable, its stdin and stdout pipes.

    At the end each child gets EOF on stdin (children that `hold()` then leave their `with` blocks and
    clean up), then whatever is left of its process group is killed.
    """
    started: list[subprocess.Popen] = []

    def start(code: str) -> subprocess.Popen:
        proc = spawn_python(
            code, env={"PYTHONPATH": str(TESTS_DIR)}, bufsize=0, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        with contextlib.suppress(OSError):
            proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=DEADLINE)
        kill_tree(proc)
        proc.stdout.close()
