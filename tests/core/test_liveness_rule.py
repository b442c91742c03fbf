"""The active liveness rule (feeder.core.liveness): what to send and when a link is dead, from time alone."""

from __future__ import annotations

import pytest

from feeder.core.liveness import Act, Liveness

T0 = 1000.0


def _rule(request: str | None = "public/test", ponged: bool = True) -> Liveness:
    rule = Liveness(0.5, 1.5, request, T0)
    assert rule.check(T0, T0, T0).act is Act.PING  # the opening ping: does the server pong?
    rule.ping_sent(T0)
    if ponged:
        rule.ponged()
    return rule


def _steady(rule: Liveness, until: float, every: float = 0.1) -> float:
    now = T0
    while now < until:
        now = round(now + every, 6)
        assert rule.check(now, now, now).act is Act.OK
    return now


@pytest.mark.parametrize(("interval", "timeout"), [(0.0, 1.0), (1.0, 1.0), (2.0, 1.0), (-1.0, 1.0)])
def test_interval_must_be_below_the_timeout(interval, timeout):
    with pytest.raises(ValueError, match="interval < timeout"):
        Liveness(interval, timeout, None, T0)


def test_a_busy_link_sends_nothing_and_is_looked_at_once_per_interval():
    rule = _rule()
    now = _steady(rule, T0 + 10)
    assert rule.check(now, now, now).next_at == pytest.approx(now + 0.5)
    assert (rule.pings_sent, rule.requests_sent) == (1, 0)


def test_a_blackholed_link_is_dead_timeout_after_its_last_frame():
    rule = _rule()
    last = _steady(rule, T0 + 3)
    assert rule.check(last + 0.5, last, last).act is Act.REQUEST  # steady and quiet: ask the app too
    rule.request_sent(last + 0.5)
    assert rule.check(last + 0.5, last, last).act is Act.PING
    rule.ping_sent(last + 0.5)
    assert rule.check(last + 1.0, last, last).act is Act.PING
    rule.ping_sent(last + 1.0)
    step = rule.check(last + 1.2, last, last)
    assert step.act is Act.OK and step.next_at == pytest.approx(last + 1.5)
    assert rule.check(last + 1.5, last, last).act is Act.DEAD
    assert rule.reason == "no frame for 1.5 s, pings unanswered" and rule.deaths == 1


def test_an_app_that_stops_behind_answered_pings_is_dead_when_its_request_goes_unanswered():
    rule = _rule()
    last = _steady(rule, T0 + 3)
    assert rule.check(last + 0.5, last + 0.5, last).act is Act.REQUEST
    rule.request_sent(last + 0.5)
    assert rule.check(last + 1.49, last + 1.49, last).act is Act.OK
    assert rule.check(last + 1.5, last + 1.5, last).act is Act.DEAD
    assert rule.reason == "no message for 1.5 s, public/test unanswered for 1.0 s"


def test_a_market_pause_costs_one_answered_request_and_no_death():
    rule = _rule()
    last = _steady(rule, T0 + 3)
    assert rule.check(last + 0.5, last + 0.5, last).act is Act.REQUEST
    rule.request_sent(last + 0.5)
    answer = last + 0.52
    now = answer
    for _ in range(200):  # 100 s of quiet data, pings answered
        step = rule.check(now, now, answer)
        if step.act is Act.PING:
            rule.ping_sent(now)
            continue
        assert step.act is Act.OK
        now = step.next_at
    assert rule.requests_sent == 1 and rule.deaths == 0


def test_a_link_that_is_never_steady_is_never_asked():
    rule = _rule()
    now = T0
    for _ in range(50):  # a message every 0.7 s: each gap is a quiet interval
        now += 0.7
        assert rule.check(now - 0.2, now - 0.2, now - 0.7).act in (Act.OK, Act.PING)
        rule.ping_sent(now - 0.2)
        assert rule.check(now, now, now).act is Act.OK
    assert rule.requests_sent == 0


def test_a_server_that_never_pongs_is_asked_with_the_request_every_quiet_interval():
    rule = _rule(ponged=False)
    assert rule.check(T0 + 0.5, T0, T0).act is Act.REQUEST
    rule.request_sent(T0 + 0.5)
    assert rule.check(T0 + 0.5, T0, T0).act is Act.PING
    rule.ping_sent(T0 + 0.5)
    assert rule.check(T0 + 1.2, T0, T0).act is Act.PING
    rule.ping_sent(T0 + 1.2)
    answered = T0 + 1.3  # the request's answer: the only frames this server sends
    assert rule.check(T0 + 1.6, answered, answered).act is Act.OK  # no pong yet: the frame rule waits
    assert rule.check(answered + 0.5, answered, answered).act is Act.REQUEST
    rule.request_sent(answered + 0.5)
    assert rule.check(answered + 1.5, answered + 0.7, answered).act is Act.DEAD
    assert "public/test unanswered" in rule.reason


def test_without_a_request_method_the_frame_rule_holds_even_before_a_pong():
    rule = _rule(request=None, ponged=False)
    assert rule.check(T0 + 1.49, T0, T0).act is Act.PING
    rule.ping_sent(T0 + 1.49)
    assert rule.check(T0 + 1.5, T0, T0).act is Act.DEAD


def test_a_ping_sent_late_by_a_starved_event_loop_gets_its_time_before_the_peer_is_blamed():
    rule = _rule()
    last = _steady(rule, T0 + 1, every=0.7)  # never steady: no request, the frame rule alone
    assert rule.check(last + 1.6, last, last).act is Act.PING  # the loop woke 1.1 s late
    rule.ping_sent(last + 1.6)
    assert rule.check(last + 2.1, last, last).act is Act.PING
    rule.ping_sent(last + 2.1)
    assert rule.check(last + 2.59, last, last).act is Act.OK
    assert rule.check(last + 2.6, last, last).act is Act.DEAD


@pytest.mark.parametrize(
    ("now", "last_frame", "last_message"),
    [(1004.9, 1004.9, 1003.4), (1005.0, 1005.0, 1003.4), (1004.9, 1003.4, 1003.4), (1005.0, 1003.5, 1003.4)],
)
def test_overdue_agrees_with_check(now, last_frame, last_message):
    rule = _rule()
    last = _steady(rule, T0 + 3.4)
    assert last == pytest.approx(1003.4)
    assert rule.check(last + 0.5, last + 0.5, last).act is Act.REQUEST
    rule.request_sent(last + 0.5)
    assert rule.overdue(now, last_frame, last_message) == (
        rule.check(now, last_frame, last_message).act is Act.DEAD
    )
