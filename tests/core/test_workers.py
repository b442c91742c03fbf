"""A worker slot's lifecycle as a table, and the facts about an exit, checked as data."""

from __future__ import annotations

import pytest

from feeder.core.workers import TRANSITIONS, WorkerEvent, WorkerState, all_failed, exit_reason, next_state
from feeder.errors import InvalidTransition

S, E = WorkerState, WorkerEvent


@pytest.mark.parametrize(
    ("path", "end"),
    [
        ([E.READY, E.RESTART, E.SPAWN, E.READY, E.STOP], S.STOPPED),  # killed once, replaced, clean stop
        ([E.RESTART, E.SPAWN, E.RESTART, E.SPAWN, E.GIVE_UP], S.FAILED),  # never got going
        ([E.READY, E.GIVE_UP, E.STOP], S.STOPPED),  # given up on, then shutdown
        ([E.RESTART, E.STOP], S.STOPPED),  # shutdown while a restart was due
    ],
)
def test_the_lifecycles_a_slot_lives_are_allowed(path, end):
    state = S.STARTING
    for event in path:
        state = next_state(state, event)
    assert state is end


@pytest.mark.parametrize(
    ("state", "event"),
    [
        (S.RUNNING, E.READY),  # ready twice
        (S.RESTARTING, E.READY),  # an answer from a process that is gone
        (S.FAILED, E.SPAWN),  # a slot given up on is never spawned again
        (S.STOPPED, E.SPAWN),  # nothing starts after shutdown began
        (S.STOPPED, E.STOP),
    ],
)
def test_a_transition_not_in_the_table_is_refused_by_name(state, event):
    with pytest.raises(InvalidTransition, match=f"{event.value!r} is not allowed in state {state.value!r}"):
        next_state(state, event)


def test_every_state_but_stopped_can_stop_and_stopped_is_the_end():
    for state in S:
        assert (E.STOP in TRANSITIONS[state]) is (state is not S.STOPPED)
    assert not TRANSITIONS[S.STOPPED]


@pytest.mark.parametrize(
    ("exitcode", "fatal_error", "reason"),
    [
        (-9, None, "killed by SIGKILL"),
        (-11, "ignored", "killed by SIGSEGV"),
        (1, None, "exit code 1"),
        (3, "bad credentials", "exit code 3 (bad credentials)"),  # 3: the worker's feed could not start
        (1, "bad credentials", "exit code 1"),  # its words only explain the fatal exit code
        (3, None, "exit code 3"),
        (None, None, "exit code None"),
    ],
)
def test_exit_reasons(exitcode, fatal_error, reason):
    assert exit_reason(exitcode, 3, fatal_error) == reason


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ([S.FAILED, S.FAILED], True),
        ([S.FAILED, S.RESTARTING], False),
        ([S.FAILED, S.RUNNING], False),
        ([], False),
    ],
)
def test_the_feeder_gives_up_only_when_every_worker_failed(states, expected):
    assert all_failed(states) is expected
