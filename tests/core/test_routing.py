"""Routing decisions as data: scores from heartbeats, where a request goes, what losing a worker means."""

from __future__ import annotations

import pytest

from feeder.core.health import Router
from feeder.core.routing import (
    HB_STALE_S,
    Attempts,
    Loss,
    answer_margin,
    candidates,
    nobody,
    refusal,
    worker_score,
)
from feeder.core.workers import WorkerState, WorkerView

S = WorkerState
NOW = 500.0
UP = {"connected": True, "authenticated": True}


def _w(index=0, state=S.RUNNING, health=UP, last_hb=NOW, inflight=0, errors=0.0) -> WorkerView:
    return WorkerView(index, state, last_hb=last_hb, health=health, inflight=inflight, recent_errors=errors)


@pytest.mark.parametrize(
    ("worker", "score"),
    [
        (_w(), 100),
        (_w(state=S.STARTING), 0),  # not running yet
        (_w(state=S.RESTARTING), 0),
        (_w(health={}), 0),  # no heartbeat from this process yet
        (_w(health={"connected": False}), 0),
        (_w(last_hb=NOW - HB_STALE_S - 0.01), 0),  # heartbeat too old: maybe hung
        (_w(last_hb=NOW - HB_STALE_S), 100),
        (_w(health={**UP, "pending": 1}, inflight=2), 85),  # the worker's queue and the supervisor's
        (_w(errors=1.0), 90),
        (_w(health={**UP, "pressure": "high", "heartbeat_misses": 1}), 60),
        (_w(health={**UP, "data_age_s": 4.0, "latency_p99_ms": 300.0}), 80),
    ],
)
def test_a_workers_score_comes_from_its_heartbeat_and_what_the_supervisor_knows(worker, score):
    assert worker_score(worker, NOW) == score


def test_only_running_workers_are_candidates_and_authentication_comes_from_the_heartbeat():
    workers = [_w(0), _w(1, state=S.STARTING), _w(2, health={"connected": True})]
    assert [(c.worker, c.score, c.authenticated) for c in candidates(workers, NOW)] == [
        (0, 100, True),
        (2, 100, False),
    ]


def _lose_every_worker(read_only: bool, workers: list[WorkerView]) -> tuple[list[int], Loss | None]:
    """Send a request and lose each worker it is sent to: where it went, and what the last loss meant
    (None: it ran out of workers, NoHealthyWorker)."""
    attempts, router, sent = Attempts(private=False, read_only=read_only), Router(), []
    while (index := attempts.choose(workers, NOW, router)) is not None:
        sent.append(index)
        if attempts.lost() is Loss.OUTCOME_UNKNOWN:
            return sent, Loss.OUTCOME_UNKNOWN
    return sent, None


@pytest.mark.parametrize(
    ("read_only", "workers", "sent_to", "then"),
    [
        # read-only: each loss fails over to the best worker not tried yet, until none is left
        (True, [_w(0, errors=1.0), _w(1)], [1, 0], None),
        (True, [_w(0), _w(1, errors=1.0), _w(2, state=S.STARTING)], [0, 1], None),
        # anything else is sent once: losing its worker means its outcome is unknown
        (False, [_w(0), _w(1, errors=1.0)], [0], Loss.OUTCOME_UNKNOWN),
        (False, [_w(0, health={"connected": False})], [], None),
    ],
)
def test_a_requests_way_through_the_workers(read_only, workers, sent_to, then):
    assert _lose_every_worker(read_only, workers) == (sent_to, then)


def test_a_private_request_goes_only_to_an_authenticated_worker():
    workers = [_w(0, health={"connected": True}), _w(1, errors=2.0)]
    assert Attempts(private=True, read_only=False).choose(workers, NOW, Router()) == 1
    assert Attempts(private=True, read_only=False).choose(workers[:1], NOW, Router()) is None


@pytest.mark.parametrize(
    ("private", "has_credentials", "refused"),
    [(True, False, True), (True, True, False), (False, False, False), (False, True, False)],
)
def test_private_methods_without_credentials_are_refused_saying_how_to_fix_it(
    private, has_credentials, refused
):
    why = refusal("private/buy", private, has_credentials)
    assert (why is not None) is refused
    if refused:
        assert "DERIBIT_CLIENT_ID" in why and "--sim" in why


def test_the_answer_margin_covers_a_hung_worker_being_killed_and_seen_dead():
    assert answer_margin(5.0) == 6.0
    assert answer_margin(2.0) == 3.0


def test_no_healthy_worker_says_every_workers_state_and_score():
    workers = [_w(0, state=S.RESTARTING), _w(1, health={"connected": False})]
    assert nobody("public/get_time", workers, NOW) == (
        "no worker can serve public/get_time now (worker 0: restarting, score 0, worker 1: running, score 0)"
    )
    assert nobody("public/get_time", [], NOW).endswith("(no workers)")
