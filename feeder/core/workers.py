"""A worker slot as the supervisor's decisions see it: its lifecycle table and a snapshot of its facts.

A slot is one worker position (its rings and CPU stay; the process behind it may be replaced). Its
states and the only transitions allowed between them are the table below; an event the table does not
allow is a bug in the supervisor and raises `InvalidTransition` naming the state and the event.

    starting ──ready──▶ running
       │                  │
       ├──restart─────────┴──▶ restarting ──spawn──▶ starting
       └──give_up─────────┴──▶ failed
    any state ──stop──▶ stopped (the end: shutdown)

`WorkerView` is what the pure decisions (`core.watchdog`, `core.routing`) read: plain data copied from
the supervisor's process table at one instant, so a decision never touches a process or a clock.
"""

from __future__ import annotations

import enum
import signal
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from feeder.errors import InvalidTransition


class WorkerState(enum.Enum):
    STARTING = "starting"  # spawned, importing and connecting; no "ready" yet
    RUNNING = "running"  # its feed started: it writes its rings and may serve requests
    RESTARTING = "restarting"  # its process exited; a replacement is due after the restart delay
    FAILED = "failed"  # restarted too often in the window: given up on, its rings get no data
    STOPPED = "stopped"  # the supervisor is shutting down


class WorkerEvent(enum.Enum):
    READY = "ready"  # the worker says its feed started
    RESTART = "restart"  # its process exited and the restart policy says try again
    GIVE_UP = "give_up"  # its process exited and the restart policy says stop trying
    SPAWN = "spawn"  # a replacement process was started
    STOP = "stop"  # shutdown


_S, _R, _RS, _F, _X = (
    WorkerState.STARTING,
    WorkerState.RUNNING,
    WorkerState.RESTARTING,
    WorkerState.FAILED,
    WorkerState.STOPPED,
)
_E = WorkerEvent

TRANSITIONS: Mapping[WorkerState, Mapping[WorkerEvent, WorkerState]] = MappingProxyType(
    {
        _S: MappingProxyType({_E.READY: _R, _E.RESTART: _RS, _E.GIVE_UP: _F, _E.STOP: _X}),
        _R: MappingProxyType({_E.RESTART: _RS, _E.GIVE_UP: _F, _E.STOP: _X}),
        _RS: MappingProxyType({_E.SPAWN: _S, _E.STOP: _X}),
        _F: MappingProxyType({_E.STOP: _X}),
        _X: MappingProxyType({}),
    }
)


def next_state(state: WorkerState, event: WorkerEvent) -> WorkerState:
    """The state after `event`, or InvalidTransition when the table does not allow it."""
    allowed = TRANSITIONS[state]
    try:
        return allowed[event]
    except KeyError:
        names = ", ".join(e.value for e in allowed) or "nothing"
        raise InvalidTransition(
            f"worker slot: event {event.value!r} is not allowed in state {state.value!r} (allowed: {names})"
        ) from None


@dataclass(frozen=True)
class WorkerView:
    """One slot's facts at one instant (monotonic seconds), copied out of the process table."""

    index: int
    state: WorkerState
    started: float = 0.0  # when its current process was spawned
    last_hb: float = 0.0  # when its last heartbeat arrived (before `started`: none from this process)
    alive: bool = True  # its current process has not exited
    killed: bool = False  # the watchdog already SIGKILLed its current process
    health: Mapping[str, Any] = field(default_factory=dict)  # the figures of its last heartbeat
    inflight: int = 0  # requests the supervisor routed to it and still waits for
    recent_errors: float = 0.0  # already faded (core.health.ErrorWindow)


def exit_reason(exitcode: int | None, fatal_code: int, fatal_error: str | None) -> str:
    """Why a worker process ended, for the log and `last_error`: its exit code or the signal that
    killed it, with the worker's own words when it exited because its feed could not start."""
    if exitcode is not None and exitcode < 0:
        return f"killed by {signal.Signals(-exitcode).name}"
    reason = f"exit code {exitcode}"
    if exitcode == fatal_code and fatal_error:
        reason += f" ({fatal_error})"
    return reason


def all_failed(states: Iterable[WorkerState]) -> bool:
    """Every slot was given up on: the feeder has nothing left to run and exits 1."""
    states = list(states)
    return bool(states) and all(s is WorkerState.FAILED for s in states)
