"""Heartbeat strategies and active liveness in the monitor: verdicts and deadlines from time and frames,
per kind (the liveness rule itself: test_liveness_rule.py)."""

from __future__ import annotations

import pytest

from feeder.core.heartbeat import KINDS, HeartbeatMonitor, Verdict

T0 = 1000.0


def _monitor(kind: str, interval: float = 10.0, max_misses: int = 2, liveness: float | None = None):
    return HeartbeatMonitor(
        KINDS[kind], interval, max_misses, now=T0, liveness_interval=liveness, liveness_timeout=1.5
    )


def _opened(m: HeartbeatMonitor, answered: bool = True) -> HeartbeatMonitor:
    """The opening ping went out at T0 (and was answered at once, unless not `answered`)."""
    assert m.check(T0, T0, T0).verdict is Verdict.PROBE
    payload = m.probe_sent(T0)
    if answered:
        m.pong(payload, T0)
    return m


def test_the_table_has_the_four_kinds():
    assert set(KINDS) == {"deribit", "ping_pong", "binance", "none"}


def test_deribit_asks_for_server_heartbeats_after_connect_with_an_integer_interval():
    assert _monitor("deribit", interval=10.0).setup_request() == ("public/set_heartbeat", {"interval": 10})
    assert _monitor("ping_pong").setup_request() is None


def test_deribit_answers_test_request_with_public_test_and_ignores_plain_heartbeats():
    m = _monitor("deribit")
    assert m.on_server_heartbeat({"type": "test_request"}, 1001.0) == "public/test"
    assert m.on_server_heartbeat({"type": "heartbeat"}, 1002.0) is None
    assert m.on_server_heartbeat("garbage", 1003.0) is None
    assert m.server_heartbeats == 3


def test_deribit_link_is_alive_while_messages_arrive_and_says_when_to_look_again():
    m = _monitor("deribit")
    assert m.check(1025.0, last_frame=1010.0, last_message=1010.0) == (Verdict.OK, 1030.0)


def test_deribit_link_is_dead_after_two_intervals_without_a_message_even_if_pongs_come():
    m = _monitor("deribit")
    assert m.check(1020.0, last_frame=1019.9, last_message=T0).verdict is Verdict.OK
    assert m.check(1020.5, last_frame=1020.4, last_message=T0).verdict is Verdict.DEAD
    assert "no message for 20.5 s" in m.reason and m.misses == 2


# --- active liveness ------------------------------------------------------------------------------


def test_a_silent_link_is_pinged_every_interval_and_dead_after_the_timeout():
    m = _opened(_monitor("deribit", liveness=0.5))
    assert m.check(1000.4, last_frame=T0, last_message=T0) == (Verdict.OK, 1000.5)
    assert m.check(1000.5, last_frame=T0, last_message=T0).verdict is Verdict.PROBE
    assert m.probe_sent(1000.5) == b"probe-2"
    assert m.check(1000.5, last_frame=T0, last_message=T0) == (Verdict.OK, 1001.0)
    assert m.check(1001.0, T0, T0).verdict is Verdict.PROBE
    m.probe_sent(1001.0)
    assert m.check(1001.4, T0, T0).verdict is Verdict.OK
    assert m.check(1001.5, T0, T0).verdict is Verdict.DEAD
    assert "no frame for 1.5 s, pings unanswered" in m.reason and m.misses_total == 1
    assert m.health()["probes_sent"] == 3


@pytest.mark.parametrize("answer", ["pong", "data"])
def test_any_frame_after_a_ping_answers_it(answer):
    m = _opened(_monitor("deribit", liveness=0.5))
    m.check(1000.5, T0, T0)
    payload = m.probe_sent(1000.5)
    if answer == "pong":
        m.pong(payload, 1000.52)
        assert m.rtt == pytest.approx(0.02) and m.pongs == 2
    assert m.check(1000.6, last_frame=1000.52, last_message=T0) == (Verdict.OK, pytest.approx(1001.02))


def test_silent_data_is_not_death_while_pings_are_answered():
    m = _opened(_monitor("binance", interval=10.0, liveness=0.5))
    now, last = T0, T0
    for _ in range(100):  # 50 s without a message, every ping answered
        verdict, next_at = m.check(now, last, T0)
        if verdict is Verdict.PROBE:
            m.pong(m.probe_sent(now), now + 0.01)
            last = now + 0.01
            verdict, next_at = m.check(now, last, T0)
        assert verdict is Verdict.OK
        now = next_at
    assert m.health()["probes_sent"] > 50 and m.misses_total == 0


def test_deribit_asks_public_test_when_a_steady_link_goes_quiet_and_pongs_still_come():
    m = _opened(_monitor("deribit", liveness=0.5))
    now = T0
    while now < T0 + 3:  # a message every 0.1 s for 3 s
        now += 0.1
        assert m.check(now, now, now).verdict is Verdict.OK
    last = now
    assert m.check(last + 0.5, last + 0.5, last).verdict is Verdict.REQUEST  # frames (pongs) still come
    m.request_sent(last + 0.5)
    assert m.check(last + 1.4, last + 1.4, last).verdict is Verdict.OK
    assert m.check(last + 1.5, last + 1.5, last).verdict is Verdict.DEAD
    assert "public/test unanswered" in m.reason and m.health()["probe_requests_sent"] == 1


def test_liveness_can_be_turned_off_and_the_none_kind_has_none():
    assert _monitor("binance", liveness=None).check(2000.0, T0, T0) == (
        Verdict.OK,
        pytest.approx(T0 + 86400 - 600),
    )
    assert _monitor("none", liveness=0.5).check(10_000_000.0, 0.0, 0.0) == (Verdict.OK, None)


# --- ping_pong and binance -----------------------------------------------------------------------


def test_ping_pong_pings_every_interval_and_a_pong_clears_misses():
    m = _monitor("ping_pong")
    assert m.check(1005.0, 1005.0, 1005.0) == (Verdict.OK, 1010.0)
    assert m.check(1010.0, 1010.0, 1010.0).verdict is Verdict.PING
    payload = m.ping_sent(1010.0)
    assert payload.startswith(b"hb-") and m.ping_sent(1010.0) != payload
    m.pong(m.ping_sent(1010.0), 1010.02)
    assert m.misses == 0 and m.rtt == pytest.approx(0.02)


def test_ping_pong_acts_on_misses_not_just_counting_them():
    m = _monitor("ping_pong", max_misses=2)
    assert m.check(1010.0, 0.0, 0.0).verdict is Verdict.PING
    m.ping_sent(1010.0)
    assert m.check(1015.0, 0.0, 0.0) == (Verdict.OK, 1020.0)  # still waiting for the pong
    assert m.check(1020.0, 0.0, 0.0).verdict is Verdict.PING  # first miss, ping again
    assert m.misses == 1
    m.ping_sent(1020.0)
    assert m.check(1030.0, 0.0, 0.0).verdict is Verdict.DEAD
    assert "2 pings in a row unanswered" in m.reason


def test_a_pong_that_answers_no_ping_of_ours_is_ignored():
    m = _monitor("ping_pong")
    m.pong(b"someone-else", 1001.0)
    assert m.pongs == 0 and m.rtt is None


def test_binance_rotates_before_the_24_hour_limit():
    m = _monitor("binance")
    old = T0 + 24 * 3600 - 600
    assert m.check(old, last_frame=old - 1, last_message=old - 1).verdict is Verdict.ROTATE


def test_reset_on_a_new_connection_forgets_old_silence_and_outstanding_pings():
    m = _opened(_monitor("deribit", liveness=0.5))
    m.check(1000.5, T0, T0)
    m.probe_sent(1000.5)
    m.reset(5000.0)
    assert m.check(5000.0, last_frame=T0, last_message=T0).verdict is Verdict.PROBE  # the opening ping
    m.pong(m.probe_sent(5000.0), 5000.01)
    assert m.check(5000.2, last_frame=5000.01, last_message=T0) == (Verdict.OK, 5000.5)


def test_health_reports_sent_answered_rtt_and_misses():
    m = _monitor("deribit")
    m.answer_sent(1001.0)
    m.answer_acknowledged(1001.0, 1001.004)
    h = m.health()
    assert (h["kind"], h["last_sent"], h["last_answered"], h["answers_sent"]) == (
        "deribit",
        1001.0,
        1001.004,
        1,
    )
    assert h["rtt"] == pytest.approx(0.004) and h["misses"] == 0 and h["probes_sent"] == 0


@pytest.mark.parametrize(
    ("now", "last_frame", "last_message"),
    [(1001.0, T0, T0), (1001.6, T0, T0), (1001.6, 1000.9, T0), (1020.5, 1020.4, T0), (1020.5, T0, T0)],
)
def test_overdue_says_exactly_when_check_would_find_the_link_dead(now, last_frame, last_message):
    m = _opened(_monitor("deribit", liveness=0.5))
    m.check(1000.5, T0, T0)
    m.probe_sent(1000.5)
    expected = m.overdue(now, last_frame, last_message)
    assert expected == (m.check(now, last_frame, last_message).verdict is Verdict.DEAD)
