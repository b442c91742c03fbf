"""The supervisor's process table: one `Slot` per worker position, and what it learns from heartbeats.

A slot's rings and CPU stay; the process behind it may be replaced. The table holds processes, pipes and
futures; the decisions never see them: they read `Slot.view(now)`, a `WorkerView` of plain data
(`feeder.core.workers`). State changes go through the lifecycle table (`Slot.advance`).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import psutil

from feeder.core.health import ErrorWindow
from feeder.core.meter import RateMeter
from feeder.core.restart import RestartPolicy
from feeder.core.silence import ChannelTable
from feeder.core.workers import WorkerEvent, WorkerState, WorkerView, next_state

FRAMES_EVERY_S = 1.0  # messages per second are measured over at least this long
PER_RING = ("ring_gaps", "audits", "legs")  # heartbeat figures a worker sends now and then (or when changed)


class WorkerLost(Exception):
    """The worker died (or stopped answering) while a request was in flight."""


@dataclass
class Slot:
    index: int
    rings: tuple[str, ...]
    cpu: int | None
    policy: RestartPolicy
    process: Any = None
    conn: Connection | None = None
    state: WorkerState = WorkerState.STARTING
    started: float = 0.0
    last_hb: float = 0.0
    health: dict[str, Any] = field(default_factory=dict)  # the last heartbeat's figures
    restarts: int = 0
    served: int = 0  # requests this slot answered
    errors: ErrorWindow = field(default_factory=ErrorWindow)
    last_error_count: int = 0
    inflight: dict[int, asyncio.Future[Any]] = field(default_factory=dict)
    last_error: str | None = None
    frames: RateMeter = field(default_factory=lambda: RateMeter(FRAMES_EVERY_S))
    ps: psutil.Process | None = None
    killed: Any = None  # the process the watchdog already SIGKILLed
    # ring -> audit figures of earlier processes
    audits_before: dict[str, dict[str, int]] = field(default_factory=dict)
    channels: ChannelTable = field(default_factory=ChannelTable)  # per channel: messages, last receive time

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def advance(self, event: WorkerEvent) -> None:
        self.state = next_state(self.state, event)

    def view(self, now: float) -> WorkerView:
        live = self.state in (WorkerState.STARTING, WorkerState.RUNNING) and self.process is not None
        return WorkerView(
            index=self.index,
            state=self.state,
            started=self.started,
            last_hb=self.last_hb,
            alive=live and self.process.is_alive(),
            killed=self.killed is not None and self.killed is self.process,
            health=self.health,
            inflight=len(self.inflight),
            recent_errors=self.errors.weight(now),
        )

    def on_heartbeat(self, health: dict[str, Any], now: float) -> None:
        """A heartbeat's figures: errors the worker counted since the last one fade in the score. The
        per-ring figures come only when they changed: the last ones stand until then; so do the channels
        a report leaves out (it names only those that changed)."""
        report = health.pop("channel_figures", None)
        if report is not None:
            self.channels.merge(report, time.time_ns())
        for key in PER_RING:
            if key not in health and key in self.health:
                health[key] = self.health[key]
        self.last_hb, self.health = now, health
        errors_total = int(health.get("errors", 0))
        for _ in range(max(0, errors_total - self.last_error_count)):
            self.errors.record(now)
        self.last_error_count = errors_total
        self.frames.sample(now, int(health.get("frames_in", 0)))

    def audits(self) -> dict[str, dict[str, int]]:
        """Audit figures per ring over every process this slot ran."""
        return add_audits(self.audits_before, self.health.get("audits", {}))

    def retire_health(self) -> None:
        """The process exited: keep what its audits counted, forget the rest of its figures."""
        self.audits_before, self.health = self.audits(), {}

    def new_process(self, process: Any, conn: Connection, now: float) -> None:
        """A fresh process took the slot: its figures start again from zero."""
        self.process, self.conn = process, conn
        self.started, self.health, self.last_error_count = now, {}, 0
        self.frames.restart()
        self.channels.new_process()


def add_audits(
    before: dict[str, dict[str, int]], now: dict[str, dict[str, int]]
) -> dict[str, dict[str, int]]:
    """Audit figures per ring over a slot's processes (counters add up; the last pass is the latest)."""
    out = {ring: dict(figures) for ring, figures in before.items()}
    for ring, figures in now.items():
        total = out.setdefault(ring, {})
        for key, value in figures.items():
            total[key] = (
                max(total.get(key, 0), value) if key == "last_passed_ns" else total.get(key, 0) + value
            )
    return out
