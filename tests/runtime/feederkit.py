"""Run the real feeder program (`python -m feeder`) as a subprocess for end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from helpers import wait_until

from feeder import FeederHandle, FeederNotRunning
from feeder.runtime.rundir import run_dir


class FeederProcess:
    """`python -m feeder ARGS` in its own process group; `stop()` (SIGTERM) or `kill()` it."""

    def __init__(self, *args: str, env: dict | None = None, log: Path | None = None):
        self.args = ["--display", "off", *args]
        self.env = {**os.environ, **(env or {})}
        self.log_path = log
        self.proc: subprocess.Popen | None = None

    def start(self, workers: int | None = None, timeout: float = 60.0) -> FeederProcess:
        out = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "feeder", *self.args], env=self.env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        if workers is not None:
            wait_until(lambda: self._running(workers), timeout, f"{workers} workers running")
        return self

    def _running(self, workers: int) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"feeder exited early with code {self.proc.returncode}:\n{self.output()}")
        try:
            with FeederHandle() as h:
                status = h.status()
        except (FeederNotRunning, OSError):
            return False
        up = [w for w in status["workers"] if w["state"] == "running" and w["connected"]]
        return len(up) == workers

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait for a clean exit; returns the exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL the whole process group (supervisor, workers, simulator) and reap the supervisor."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def children(self) -> list[int]:
        import psutil

        try:
            return [p.pid for p in psutil.Process(self.proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            return []


def cleanup_run_dir(instance: str) -> None:
    shutil.rmtree(run_dir(instance), ignore_errors=True)
