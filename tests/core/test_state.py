"""The connection lifecycle as a pure machine: the table allows the lifecycle and refuses everything
else by name; losses, retries, give-ups, replacements and closes turn into the right actions. No
sockets: events in, actions out, time passed in."""

from __future__ import annotations

import random

import pytest
from websockets.datastructures import Headers
from websockets.exceptions import InvalidStatus
from websockets.http11 import Response

from feeder.core import state as lc
from feeder.core.backoff import Backoff
from feeder.core.state import TABLE, ConnState, allowed
from feeder.errors import ConnectionLost, ExchangeError, InvalidTransition, UsageError

S = ConnState
EVENTS = {
    lc.Connect: lc.Connect(),
    lc.Opened: lc.Opened(),
    lc.SetUp: lc.SetUp(),
    lc.Restored: lc.Restored(),
    lc.Lost: lc.Lost(ConnectionResetError("reset by peer")),
    lc.CreditsDrained: lc.CreditsDrained(1.0),
    lc.RetryDue: lc.RetryDue(),
    lc.Replace: lc.Replace(ConnectionLost("x", sent=False, reason="replace")),
    lc.Close: lc.Close(),
    lc.Closed: lc.Closed(),
}
RESET = ConnectionResetError("reset by peer")


def _status(code: int) -> InvalidStatus:
    return InvalidStatus(Response(code, "Too Many Requests", Headers(), b""))


def machine(**backoff: object) -> lc.Lifecycle:
    options = {"initial": 0.1, "cap": 5.0, "jitter": 0.0, "stable_after": 30.0, **backoff}
    return lc.Lifecycle(lc.Policy(), Backoff(**options), random.Random(7))  # type: ignore[arg-type]


def kinds(actions: list) -> list[type]:
    return [type(a) for a in actions]


def live(m: lc.Lifecycle, now: float = 0.0) -> lc.Lifecycle:
    for event in (lc.Connect(), lc.Opened(), lc.SetUp(), lc.Restored()):
        m.handle(event, now)
    return m


def at(state: ConnState) -> lc.Lifecycle:
    """A machine brought to `state` through the table."""
    m = machine()
    path = {
        S.IDLE: [],
        S.CONNECTING: [lc.Connect()],
        S.SETTING_UP: [lc.Connect(), lc.Opened()],
        S.RESTORING: [lc.Connect(), lc.Opened(), lc.SetUp()],
        S.CONNECTED: [lc.Connect(), lc.Opened(), lc.SetUp(), lc.Restored()],
        S.RECONNECTING: [lc.Connect(), lc.Lost(RESET)],
        S.CLOSING: [lc.Connect(), lc.Close()],
        S.CLOSED: [lc.Close()],
    }[state]
    for event in path:
        m.handle(event, 0.0)
    assert m.state is state
    return m


# --- the table -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "event"), [(s, e) for s in ConnState for e in EVENTS if e not in TABLE[s]], ids=str
)
def test_an_event_the_table_does_not_list_fails_naming_event_and_state(state, event):
    m = at(state)
    with pytest.raises(InvalidTransition, match=f"{state.value!r} does not accept {event.__name__}"):
        m.handle(EVENTS[event], 1.0)
    assert m.state is state


def test_an_invalid_transition_is_the_caller_s_fault():
    assert issubclass(InvalidTransition, UsageError)


@pytest.mark.parametrize(
    ("events", "states", "actions"),
    [
        (
            [lc.Connect(), lc.Opened(), lc.SetUp(), lc.Restored()],
            [S.CONNECTING, S.SETTING_UP, S.RESTORING, S.CONNECTED],
            [[lc.OpenSocket], [lc.RunSetup], [lc.Restore], [lc.GoLive]],
        ),
        ([lc.Close()], [S.CLOSED], [[lc.Finish]]),
        (
            [lc.Connect(), lc.Close(), lc.Closed()],
            [S.CONNECTING, S.CLOSING, S.CLOSED],
            [[lc.OpenSocket], [], [lc.Finish]],
        ),
    ],
)
def test_the_lifecycle_walks_through_the_table(events, states, actions):
    m = machine()
    for event, state, expected in zip(events, states, actions, strict=True):
        assert kinds(m.handle(event, 0.0)) == expected
        assert m.state is state


def test_every_state_the_table_names_is_reachable_and_has_a_way_out():
    targets = {t for row in TABLE.values() for ts in row.values() for t in ts}
    assert targets | {S.IDLE} == set(ConnState)
    for state in ConnState:
        assert allowed(state), state


# --- losses and retries --------------------------------------------------------------------------


def test_a_connection_that_opened_reports_its_loss_and_waits_to_retry():
    m = live(machine())
    ended, wait = m.handle(lc.Lost(RESET), 1.0)
    assert isinstance(ended, lc.ConnectionEnded) and ended.notify and ended.reason is RESET
    assert ended.explanation.category.value == "recoverable"
    assert isinstance(wait, lc.WaitToRetry) and wait.delay == pytest.approx(0.1) and wait.attempt == 1
    assert m.state is S.RECONNECTING
    assert kinds(m.handle(lc.RetryDue(), 1.1)) == [lc.OpenSocket] and m.state is S.CONNECTING


@pytest.mark.parametrize("stage", [S.SETTING_UP, S.RESTORING, S.CONNECTED])
def test_a_loss_before_going_live_is_reported_too_so_books_are_flagged(stage):
    ended = at(stage).handle(lc.Lost(RESET), 1.0)[0]
    assert isinstance(ended, lc.ConnectionEnded) and ended.notify


def test_a_failed_attempt_is_not_a_disconnect_and_the_backoff_grows():
    m = at(S.CONNECTING)
    delays = []
    for n in range(4):
        ended, wait = m.handle(lc.Lost(RESET), float(n))
        assert not ended.notify
        delays.append(wait.delay)
        m.handle(lc.RetryDue(), float(n))
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8])


def test_a_connection_up_for_stable_after_resets_the_backoff():
    m = at(S.CONNECTING)
    m.handle(lc.Lost(RESET), 0.0)
    m.handle(lc.RetryDue(), 0.0)
    m.handle(lc.Lost(RESET), 0.0)  # attempts: 2
    m.handle(lc.RetryDue(), 0.0)
    m.handle(lc.Opened(), 10.0)
    assert m.handle(lc.Lost(RESET), 41.0)[1].delay == pytest.approx(0.1)


def test_a_fatal_error_gives_up_with_the_explanation():
    m = live(machine())
    error = ExchangeError(13004, "invalid_credentials")
    ended, give_up = m.handle(lc.Lost(error), 1.0)
    assert isinstance(give_up, lc.GiveUp) and give_up.error.fatal and "13004" in str(give_up.error)
    assert ended.notify and m.state is S.CLOSED


def test_retries_stop_after_max_retries():
    m = machine(max_retries=2)
    m.handle(lc.Connect(), 0.0)
    for _ in range(2):
        assert kinds(m.handle(lc.Lost(RESET), 0.0)) == [lc.ConnectionEnded, lc.WaitToRetry]
        m.handle(lc.RetryDue(), 0.0)
    give_up = m.handle(lc.Lost(RESET), 0.0)[1]
    assert isinstance(give_up, lc.GiveUp) and not give_up.error.fatal
    assert "after 2 retries" in give_up.error.advice and m.state is S.CLOSED


def test_no_retry_when_reconnect_on_error_is_off():
    m = lc.Lifecycle(lc.Policy(reconnect_on_error=False), Backoff())
    m.handle(lc.Connect(), 0.0)
    give_up = m.handle(lc.Lost(RESET), 0.0)[1]
    assert isinstance(give_up, lc.GiveUp) and "reconnect_on_error is off" in give_up.error.advice


def test_a_new_connect_after_giving_up_starts_counting_again():
    m = machine(max_retries=1)
    m.handle(lc.Connect(), 0.0)
    m.handle(lc.Lost(RESET), 0.0)
    m.handle(lc.RetryDue(), 0.0)
    assert isinstance(m.handle(lc.Lost(RESET), 0.0)[1], lc.GiveUp)
    m.handle(lc.Connect(), 1.0)
    assert isinstance(m.handle(lc.Lost(RESET), 1.0)[1], lc.WaitToRetry)


# --- rate limits ---------------------------------------------------------------------------------


def test_a_loss_after_too_many_requests_waits_until_the_credits_refill():
    m = live(machine())
    ended, drain = m.handle(lc.Lost(RESET, rate_limited=True), 1.0)
    assert ended.explanation.category.value == "rate_limited" and isinstance(drain, lc.DrainCredits)
    (wait,) = m.handle(lc.CreditsDrained(3.5), 1.0)
    assert wait.delay == pytest.approx(3.5 + 0.1) and m.state is S.RECONNECTING


def test_the_wait_after_too_many_requests_is_jittered_above_the_refill():
    delays = []
    for seed in range(20):
        m = lc.Lifecycle(lc.Policy(), Backoff(initial=0.1, jitter=0.2), random.Random(seed))
        live(m).handle(lc.Lost(RESET, rate_limited=True), 1.0)
        (wait,) = m.handle(lc.CreditsDrained(3.5), 1.0)
        delays.append(wait.delay)
    assert min(delays) >= 3.6 and max(delays) <= 3.6 * 1.2 and len(set(delays)) == 20


def test_a_reconnect_refused_with_429_after_too_many_requests_waits_the_refill_again_and_longer():
    m = live(machine())
    m.handle(lc.Lost(RESET, rate_limited=True), 1.0)
    waits = [m.handle(lc.CreditsDrained(0.5), 1.0)[0].delay]
    for _ in range(3):
        m.handle(lc.RetryDue(), 2.0)
        ended, drain = m.handle(lc.Lost(_status(429)), 2.0)
        assert ended.explanation.category.value == "rate_limited" and not ended.notify
        assert isinstance(drain, lc.DrainCredits)
        waits.append(m.handle(lc.CreditsDrained(0.5), 2.0)[0].delay)
    assert waits == pytest.approx([0.6, 0.7, 0.9, 1.3]) and m.state is S.RECONNECTING


def test_without_a_limiter_a_rate_limited_loss_waits_the_longest_backoff():
    m = at(S.CONNECTING)
    m.handle(lc.Lost(ExchangeError(10028, "too_many_requests")), 0.0)
    (wait,) = m.handle(lc.CreditsDrained(None), 0.0)
    assert wait.delay == pytest.approx(5.0 + 0.1)


def test_credits_drained_unasked_is_refused():
    with pytest.raises(InvalidTransition, match="without a DrainCredits"):
        at(S.RECONNECTING).handle(lc.CreditsDrained(1.0), 0.0)


# --- replacing and closing -----------------------------------------------------------------------


def test_replace_drops_the_socket_and_the_loss_that_follows_carries_its_reason():
    m = live(machine())
    dead = ConnectionLost("heartbeat", sent=False, reason="no frame for 1.5 s")
    assert m.handle(lc.Replace(dead, abort=True), 1.0) == [lc.DropSocket(abort=True)]
    assert m.state is S.CONNECTED
    ended, wait = m.handle(lc.Lost(RESET), 1.0)
    assert ended.reason is dead and wait.delay > 0


def test_replace_at_once_skips_the_backoff_wait():
    m = live(machine())
    m.handle(lc.Replace(RESET, abort=False, at_once=True), 1.0)
    assert m.handle(lc.Lost(RESET), 1.0)[1].delay == 0.0


def test_replace_at_once_while_backing_off_opens_now():
    m = at(S.RECONNECTING)
    assert kinds(m.handle(lc.Replace(RESET, at_once=True), 0.0)) == [lc.OpenSocket]
    assert m.state is S.CONNECTING


def test_a_setup_failure_replaced_before_any_loss_does_not_leak_into_the_next_connection():
    m = at(S.CONNECTING)
    m.handle(lc.Replace(RESET, abort=True), 0.0)  # nothing to drop yet: the attempt under way stays
    m.handle(lc.Opened(), 0.0)
    other = ConnectionResetError("later")
    assert m.handle(lc.Lost(other), 1.0)[0].reason is other


def test_close_from_a_live_state_reports_the_loss_but_never_retries():
    m = live(machine())
    assert m.handle(lc.Close(), 1.0) == [] and m.state is S.CLOSING
    assert kinds(m.handle(lc.Lost(RESET), 1.0)) == [lc.ConnectionEnded]
    assert m.handle(lc.Closed(), 1.0) == [lc.Finish()] and m.state is S.CLOSED
