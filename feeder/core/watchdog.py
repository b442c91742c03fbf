"""Which workers are hung: heartbeat ages and the clock in, what to do about each worker out. Pure.

Rules it keeps:
- Only a live process of a starting or running slot is judged, and one the watchdog already killed is
  not killed again (the kernel may take a while to tear down a big process).
- A worker is silent since its last heartbeat, or since it was spawned if none came yet. A starting
  worker may be silent for `START_GRACE_S` (it imports and connects first), a running one for
  `hang_timeout` (long enough for a CPU-starved worker on a loaded machine). Beyond that: kill it (its
  exit then triggers the restart).
- A worker silent for more than `STOPPED_AFTER_S` is killed at once if the kernel shows it stopped
  (SIGSTOP): no need to wait out a timeout meant for slow machines. Asking the kernel is I/O, so the
  verdict says "kill if stopped" and the shell asks.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from feeder.core.workers import WorkerState, WorkerView

START_GRACE_S = 30.0  # a starting worker imports and connects before its first heartbeat
STOPPED_AFTER_S = 1.0  # a silent worker the kernel shows as stopped (SIGSTOP) is hung after this

_WATCHED = (WorkerState.STARTING, WorkerState.RUNNING)


class Action(enum.Enum):
    NONE = "none"
    KILL = "kill"
    KILL_IF_STOPPED = "kill_if_stopped"  # kill it if the kernel shows the process stopped


@dataclass(frozen=True)
class Verdict:
    index: int
    action: Action
    silent_s: float = 0.0

    @property
    def reason(self) -> str:
        """What `last_error` says about a worker killed on this verdict."""
        if self.action is Action.KILL_IF_STOPPED:
            return f"hung: stopped (SIGSTOP?), no heartbeat for {self.silent_s:.1f} s"
        return f"hung: no heartbeat for {self.silent_s:.1f} s"


def judge(worker: WorkerView, now: float, hang_timeout: float) -> Verdict:
    """What to do about one worker now."""
    if worker.state not in _WATCHED or not worker.alive or worker.killed:
        return Verdict(worker.index, Action.NONE)
    if worker.last_hb < worker.started:
        silent, limit = now - worker.started, START_GRACE_S
    else:
        silent, limit = now - worker.last_hb, hang_timeout
    if silent > limit:
        return Verdict(worker.index, Action.KILL, silent)
    if silent > STOPPED_AFTER_S and limit > STOPPED_AFTER_S:
        return Verdict(worker.index, Action.KILL_IF_STOPPED, silent)
    return Verdict(worker.index, Action.NONE, silent)


def sweep(workers: Iterable[WorkerView], now: float, hang_timeout: float) -> list[Verdict]:
    """The verdicts that ask for something (a kill, or a look at the kernel's process state)."""
    verdicts = (judge(w, now, hang_timeout) for w in workers)
    return [v for v in verdicts if v.action is not Action.NONE]
