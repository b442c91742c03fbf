"""Which workers are hung, as a table: a slot's facts and the clock in, the watchdog's verdict out."""

from __future__ import annotations

import pytest

from feeder.core.watchdog import START_GRACE_S, STOPPED_AFTER_S, Action, judge, sweep
from feeder.core.workers import WorkerState, WorkerView

S = WorkerState
HANG = 5.0
NOW = 1000.0


def _w(state=S.RUNNING, started=900.0, last_hb=NOW, alive=True, killed=False, index=0) -> WorkerView:
    return WorkerView(index, state, started=started, last_hb=last_hb, alive=alive, killed=killed)


@pytest.mark.parametrize(
    ("worker", "action", "silent"),
    [
        (_w(last_hb=NOW - 0.1), Action.NONE, 0.1),  # a heartbeat 100 ms ago
        (_w(last_hb=NOW - STOPPED_AFTER_S), Action.NONE, 1.0),  # silent, but not longer than a stop check
        (_w(last_hb=NOW - 1.5), Action.KILL_IF_STOPPED, 1.5),  # silent: ask the kernel whether it is stopped
        (_w(last_hb=NOW - HANG), Action.KILL_IF_STOPPED, HANG),  # at hang_timeout, not beyond
        (_w(last_hb=NOW - 5.5), Action.KILL, 5.5),  # beyond hang_timeout: hung
        (_w(started=NOW - 20, last_hb=0.0), Action.KILL_IF_STOPPED, 20.0),  # starting: no heartbeat yet
        (_w(S.STARTING, started=NOW - 20, last_hb=0.0), Action.KILL_IF_STOPPED, 20.0),
        (_w(S.STARTING, started=NOW - START_GRACE_S - 1, last_hb=0.0), Action.KILL, START_GRACE_S + 1),
        # a heartbeat from the previous process does not count for the new one
        (_w(S.STARTING, started=NOW - 2, last_hb=NOW - 3), Action.KILL_IF_STOPPED, 2.0),
    ],
)
def test_silence_is_judged_against_the_limit_of_the_workers_phase(worker, action, silent):
    verdict = judge(worker, NOW, HANG)
    assert verdict.action is action
    assert verdict.silent_s == pytest.approx(silent)


@pytest.mark.parametrize(
    "worker",
    [
        _w(last_hb=NOW - 60, alive=False),  # exited: its exit handler restarts it
        _w(last_hb=NOW - 60, killed=True),  # killed already, the kernel is still tearing it down
        _w(S.RESTARTING, last_hb=NOW - 60),
        _w(S.FAILED, last_hb=NOW - 60),
        _w(S.STOPPED, last_hb=NOW - 60),
    ],
)
def test_only_a_live_watched_process_not_yet_killed_is_judged(worker):
    assert judge(worker, NOW, HANG).action is Action.NONE


def test_a_hang_timeout_below_the_stop_check_kills_at_the_timeout():
    assert judge(_w(last_hb=NOW - 0.6), NOW, 0.5).action is Action.KILL
    assert judge(_w(last_hb=NOW - 0.4), NOW, 0.5).action is Action.NONE


def test_the_reason_says_hung_and_how_long():
    assert judge(_w(last_hb=NOW - 5.5), NOW, HANG).reason == "hung: no heartbeat for 5.5 s"
    assert judge(_w(last_hb=NOW - 1.5), NOW, HANG).reason.startswith("hung: stopped (SIGSTOP?)")


def test_a_sweep_returns_only_the_workers_that_need_something():
    workers = [_w(index=0), _w(index=1, last_hb=NOW - 9), _w(index=2, last_hb=NOW - 2)]
    assert [(v.index, v.action) for v in sweep(workers, NOW, HANG)] == [
        (1, Action.KILL),
        (2, Action.KILL_IF_STOPPED),
    ]
