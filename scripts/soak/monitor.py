"""Sampling while the soak runs: RSS and CPU of every process, the feeder's status, the simulator's stats.

A background thread samples every `interval` seconds. Rules it keeps:
- Processes are tracked by (role, pid): a restarted worker is a new process of the same role, so its
  memory is judged on its own (a fresh process must not hide or fake a leak). A process first seen
  as a child of the supervisor takes its worker role as soon as the status names it.
- Every pid ever seen is remembered (with its start time), so the soak can check after shutdown that
  none is left, including processes the supervisor started that the soak never asked about.
- A failing status call (the supervisor is busy restarting a worker, or shutting down) is counted and
  skipped; sampling never stops the soak.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import replace
from typing import Any

import psutil

from feeder import FeederError, FeederHandle
from soak.analysis import Sample


def still_running(pid: int, created: float) -> bool:
    """The process that started at `created` (not a later one reusing its pid) exists and has not exited."""
    try:
        proc = psutil.Process(pid)
        return proc.create_time() == created and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class Monitor:
    def __init__(self, instance: str, interval: float, t0: float):
        self.instance, self.interval, self.t0 = instance, interval, t0
        self.roles: dict[int, str] = {}  # pid -> role, for processes the soak started itself
        self.role_of: dict[int, str] = {}  # pid -> its most specific role seen
        self.samples: list[Sample] = []
        self.status_series: list[dict] = []
        self.sim_series: list[dict] = []
        self.seen: dict[int, tuple[str, float]] = {}  # pid -> (role, create_time)
        self.status_errors = 0
        self.sim = None
        self._procs: dict[int, psutil.Process] = {}
        self._handle: FeederHandle | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="soak-monitor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def now(self) -> float:
        return time.monotonic() - self.t0

    def watch(self, pid: int, role: str) -> None:
        with self._lock:
            self.roles[pid] = role

    def status(self) -> dict:
        """The feeder's status now (FeederHandle.status()); {} when it cannot be had."""
        try:
            if self._handle is None:
                self._handle = FeederHandle(self.instance)
            return self._handle.status()
        except (FeederError, OSError):
            self.status_errors += 1
            if self._handle is not None:
                self._handle.close()
                self._handle = None
            return {}

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        t = self.now()
        status = self.status()
        if status:
            self.status_series.append({"t_s": round(t, 2), "workers": status.get("workers", [])})
        if self.sim is not None:
            with contextlib.suppress(Exception):  # the simulator is stopping
                self.sim_series.append({"t_s": round(t, 2), **self.sim.stats()})
        for pid, role in self._processes(status).items():
            self._sample_process(t, pid, role)

    def _processes(self, status: dict) -> dict[int, str]:
        with self._lock:
            out = dict(self.roles)
        for w in status.get("workers", []):
            if w.get("pid"):
                out[w["pid"]] = self.role_of[w["pid"]] = f"worker{w['index']}"
        supervisor = status.get("pid")
        if supervisor:
            out.setdefault(supervisor, "supervisor")
            with contextlib.suppress(psutil.Error):
                for child in psutil.Process(supervisor).children(recursive=True):
                    out.setdefault(child.pid, self.role_of.get(child.pid, "supervisor-child"))
        return out

    def final_samples(self) -> list[Sample]:
        """The samples, each under its process's most specific role; a worker's samples from before
        the status named it (a spare process waiting to become a worker) are left out."""
        out = []
        for s in self.samples:
            role = self.role_of.get(s.pid, s.role)
            if s.role == "supervisor-child" and role != s.role:
                continue
            out.append(replace(s, role=role))
        return out

    def _sample_process(self, t: float, pid: int, role: str) -> None:
        proc = self._procs.get(pid)
        try:
            if proc is None:
                proc = self._procs[pid] = psutil.Process(pid)
                self.seen.setdefault(pid, (role, proc.create_time()))
                proc.cpu_percent(None)  # the first call only starts the measurement
                return
            with proc.oneshot():
                if proc.status() == psutil.STATUS_ZOMBIE:  # exited, not yet reaped: nothing to measure
                    return
                rss, cpu = proc.memory_info().rss, proc.cpu_percent(None)
            if not rss:  # exiting: its memory is already gone
                return
        except psutil.Error:
            self._procs.pop(pid, None)
            return
        self.samples.append(Sample(round(t, 2), role, pid, rss, cpu))

    def reconnects(self) -> dict[str, int]:
        """Reconnects and restarts over the whole run (a restarted worker's counter starts again at 0)."""
        per_pid: dict[int, int] = {}
        restarts: dict[int, int] = {}
        for entry in self.status_series:
            for w in entry["workers"]:
                if w.get("pid"):
                    per_pid[w["pid"]] = max(per_pid.get(w["pid"], 0), int(w.get("reconnects") or 0))
                restarts[w["index"]] = max(restarts.get(w["index"], 0), int(w.get("restarts") or 0))
        return {"reconnects": sum(per_pid.values()), "worker_restarts": sum(restarts.values())}

    def leftovers(self) -> list[str]:
        """Processes seen during the run that still exist (the same process, not a reused pid)."""
        return [
            f"{self.role_of.get(pid, role)} pid {pid}"
            for pid, (role, created) in sorted(self.seen.items())
            if still_running(pid, created)
        ]

    def kill_leftovers(self) -> None:
        for pid, (_, created) in self.seen.items():
            try:
                proc = psutil.Process(pid)
                if proc.create_time() == created:
                    proc.kill()
            except psutil.Error:
                continue

    def snapshot(self) -> dict[str, Any]:
        return {"status_errors": self.status_errors, **self.reconnects()}
