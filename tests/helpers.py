"""Shared test helpers: waiting on conditions (never sleeping as synchronisation) and processes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

# Generous: the suite must pass on a loaded 2-core machine.
DEADLINE = 30.0


def wait_until(condition: Callable[[], T], timeout: float = DEADLINE, what: str = "condition") -> T:
    """Poll `condition` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def spawn_python(code: str, *args: str, env: dict | None = None, **kwargs) -> subprocess.Popen:
    """Start `python -c code args...` in its own process group (so a test can kill all of it)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], env=full_env, start_new_session=True, **kwargs
    )


def kill_tree(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGKILL a process group started by `spawn_python` and reap it."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=timeout)
