"""Heartbeat strategies: verdicts from time and frames, for each kind in the table."""

from __future__ import annotations

from feeder.core.heartbeat import KINDS, HeartbeatMonitor, Verdict


def _monitor(kind: str, interval: float = 10.0, max_misses: int = 2) -> HeartbeatMonitor:
    return HeartbeatMonitor(KINDS[kind], interval, max_misses, now=1000.0)


def test_the_table_has_the_four_kinds_of_the_issue():
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


def test_deribit_link_is_alive_while_frames_arrive():
    m = _monitor("deribit")
    assert m.tick(1025.0, last_rx=1010.0) is Verdict.OK


def test_deribit_link_is_dead_after_two_silent_intervals():
    m = _monitor("deribit")
    assert m.tick(1020.0, last_rx=1000.0) is Verdict.OK
    assert m.tick(1020.5, last_rx=1000.0) is Verdict.DEAD
    assert "no frame for 20.5 s" in m.reason and m.misses == 2


def test_ping_pong_pings_every_interval_and_a_pong_clears_misses():
    m = _monitor("ping_pong")
    assert m.tick(1005.0, last_rx=1005.0) is Verdict.OK
    assert m.tick(1010.0, last_rx=1010.0) is Verdict.PING
    payload = m.ping_sent(1010.0)
    assert payload == b"hb-1" and m.ping_sent(1010.0) != payload
    m.pong(1010.0, 1010.02)
    assert m.misses == 0 and abs(m.rtt - 0.02) < 1e-9


def test_ping_pong_acts_on_misses_not_just_counting_them():
    m = _monitor("ping_pong", max_misses=2)
    assert m.tick(1010.0, 0.0) is Verdict.PING
    m.ping_sent(1010.0)
    assert m.tick(1015.0, 0.0) is Verdict.OK  # still waiting for the pong
    assert m.tick(1020.0, 0.0) is Verdict.PING  # first miss, ping again
    assert m.misses == 1
    m.ping_sent(1020.0)
    assert m.tick(1030.0, 0.0) is Verdict.DEAD
    assert "2 pings in a row unanswered" in m.reason


def test_binance_probes_only_when_silent():
    m = _monitor("binance")
    assert m.tick(1015.0, last_rx=1014.0) is Verdict.OK
    assert m.tick(1025.0, last_rx=1014.0) is Verdict.PING


def test_binance_rotates_before_the_24_hour_limit():
    m = _monitor("binance")
    assert m.tick(1000.0 + 24 * 3600 - 600, last_rx=1000.0 + 24 * 3600 - 601) is Verdict.ROTATE


def test_none_never_acts():
    m = _monitor("none")
    assert m.tick(10_000_000.0, last_rx=0.0) is Verdict.OK


def test_reset_on_a_new_connection_forgets_old_silence():
    m = _monitor("deribit")
    m.reset(5000.0)
    assert m.tick(5015.0, last_rx=1000.0) is Verdict.OK


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
    assert abs(h["rtt"] - 0.004) < 1e-9 and h["misses"] == 0
