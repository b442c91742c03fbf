"""The connection's lifecycle as a pure state machine: events in, actions out, time as an argument.

`TABLE` is every transition there is ({state: {event type: next state}}); `Lifecycle.handle(event, now)`
refuses an event the table does not list for the current state with InvalidTransition naming both.
The decisions that need more than the state are made here too, from the event's data, the policy and
the backoff: retry or give up and how long to wait after a loss, restore or go live after the setup,
whether a loss must be reported as a disconnect. No clock is read and no socket touched: the shell
(feeder/client/connection.py) feeds events and carries out the actions in the order given.

    idle ─Connect─▶ connecting ─Opened─▶ setting_up ─SetUp─▶ restoring ─Restored─▶ connected
                       ▲    │Lost            │Lost                │Lost                │Lost
                       │    ▼                ▼                    ▼                    ▼
                       └RetryDue── reconnecting ◀─────────── Lost, retryable ───────────┘
    Lost, not retryable: ─▶ closed (GiveUp).  Close: any live state ─▶ closing ─Closed─▶ closed.
    closed ─Connect─▶ connecting.  Replace (reconnect now, a dead heartbeat...): drop the socket; the Lost
    that follows carries the reason.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum

from feeder.core import failure
from feeder.core.backoff import Backoff
from feeder.errors import ConnectFailed, InvalidTransition


class ConnState(Enum):
    IDLE = "idle"
    CONNECTING = "connecting"  # TCP, TLS and the WebSocket opening handshake
    SETTING_UP = "setting_up"  # the heartbeat setup request and the adapter's on_connected (login...)
    RESTORING = "restoring"  # subscribing again to every channel wanted before the loss
    CONNECTED = "connected"  # live: every request flows
    RECONNECTING = "reconnecting"  # backing off before the next attempt
    CLOSING = "closing"  # close() was called
    CLOSED = "closed"  # closed by the caller, or gave up (fatal error, retries exhausted)


# --- events --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Connect:
    """The caller wants a connection."""


@dataclass(frozen=True)
class Opened:
    """The WebSocket opening handshake succeeded."""


@dataclass(frozen=True)
class SetUp:
    """The post-connect setup (heartbeat request, on_connected hook) finished."""


@dataclass(frozen=True)
class Restored:
    """Every wanted channel was asked for again (refusals are reported, not fatal; none may be due)."""


@dataclass(frozen=True)
class Lost:
    """The connection (or the attempt to open it) ended with `error`. `rate_limited`: the exchange
    asked us to slow down on it (failure.asks_to_slow_down: too_many_requests, or overloaded)."""

    error: BaseException
    rate_limited: bool = False


@dataclass(frozen=True)
class CreditsDrained:
    """Answer to DrainCredits: seconds until the rate-limit credits are full (None: no limiter)."""

    refill_s: float | None


@dataclass(frozen=True)
class RetryDue:
    """The backoff wait is over."""


@dataclass(frozen=True)
class Replace:
    """End the current connection for `reason` and open a new one (`abort`: no closing handshake;
    `at_once`: skip the backoff wait)."""

    reason: BaseException
    abort: bool = True
    at_once: bool = False


@dataclass(frozen=True)
class Close:
    """The caller closes the client."""


@dataclass(frozen=True)
class Closed:
    """close() finished: the socket is gone and pending work failed."""


Event = Connect | Opened | SetUp | Restored | Lost | CreditsDrained | RetryDue | Replace | Close | Closed


# --- actions -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenSocket:
    """Open TCP/TLS and run the WebSocket handshake; feed Opened or Lost."""


@dataclass(frozen=True)
class RunSetup:
    """Send the heartbeat setup request and await the on_connected hook; feed SetUp or Replace."""


@dataclass(frozen=True)
class Restore:
    """Subscribe again to every wanted channel (the one subscribe path); feed Restored."""


@dataclass(frozen=True)
class GoLive:
    """Let every request flow; report `connected` (attempt: failed attempts before this one)."""

    attempt: int


@dataclass(frozen=True)
class DropSocket:
    """End the current socket (abort, or the closing handshake); its Lost follows."""

    abort: bool


@dataclass(frozen=True)
class ConnectionEnded:
    """The socket is gone: fail pending requests, forget per-connection state. `notify`: it had
    opened, so report `disconnected` and call the on_disconnected hook."""

    reason: BaseException
    explanation: failure.Explanation
    notify: bool


@dataclass(frozen=True)
class DrainCredits:
    """The exchange says we overspent: empty the rate-limit buckets; feed CreditsDrained."""


@dataclass(frozen=True)
class WaitToRetry:
    """Report `reconnecting` and feed RetryDue after `delay` seconds (after a rate-limited loss: the
    refill time plus backoff and upward jitter, Backoff.after_rate_limit)."""

    delay: float
    attempt: int
    explanation: failure.Explanation


@dataclass(frozen=True)
class GiveUp:
    """Stop for good: fail every waiter, report `gave_up`."""

    error: ConnectFailed


@dataclass(frozen=True)
class Finish:
    """The client is closed: report `closed`."""


Action = (
    OpenSocket
    | RunSetup
    | Restore
    | GoLive
    | DropSocket
    | ConnectionEnded
    | DrainCredits
    | WaitToRetry
    | GiveUp
    | Finish
)

# --- the table -----------------------------------------------------------------------------------

S = ConnState
_LIVE = frozenset({S.SETTING_UP, S.RESTORING, S.CONNECTED})
_ENDS = frozenset({S.RECONNECTING, S.CLOSED})  # after a loss: retry, or give up

TABLE: dict[ConnState, dict[type, frozenset[ConnState]]] = {
    S.IDLE: {Connect: frozenset({S.CONNECTING}), Close: frozenset({S.CLOSED})},
    S.CONNECTING: {
        Opened: frozenset({S.SETTING_UP}),
        Lost: _ENDS,
        Replace: frozenset({S.CONNECTING}),
        Close: frozenset({S.CLOSING}),
    },
    S.SETTING_UP: {
        SetUp: frozenset({S.RESTORING}),
        Lost: _ENDS,
        Replace: frozenset({S.SETTING_UP}),
        Close: frozenset({S.CLOSING}),
    },
    S.RESTORING: {
        Restored: frozenset({S.CONNECTED}),
        Lost: _ENDS,
        Replace: frozenset({S.RESTORING}),
        Close: frozenset({S.CLOSING}),
    },
    S.CONNECTED: {Lost: _ENDS, Replace: frozenset({S.CONNECTED}), Close: frozenset({S.CLOSING})},
    S.RECONNECTING: {
        CreditsDrained: frozenset({S.RECONNECTING}),
        RetryDue: frozenset({S.CONNECTING}),
        Replace: frozenset({S.CONNECTING, S.RECONNECTING}),
        Close: frozenset({S.CLOSING}),
    },
    S.CLOSING: {Lost: frozenset({S.CLOSING}), Replace: frozenset({S.CLOSING}), Closed: frozenset({S.CLOSED})},
    S.CLOSED: {Connect: frozenset({S.CONNECTING})},
}


def allowed(state: ConnState) -> frozenset[type]:
    """The event types `state` accepts."""
    return frozenset(TABLE[state])


@dataclass(frozen=True)
class Policy:
    reconnect_on_error: bool = True


Step = tuple[ConnState, list[Action]]


class Lifecycle:
    """One client's connection lifecycle. `handle(event, now)` → actions; `now` is monotonic seconds."""

    def __init__(self, policy: Policy, backoff: Backoff, rng: random.Random | None = None):
        self.policy = policy
        self.backoff = backoff
        self.state = ConnState.IDLE
        self._rng = rng or random.Random()
        self._drop_reason: BaseException | None = None
        self._at_once = False
        self._opened = False  # the current connection completed its handshake
        self._waiting: failure.Explanation | None = None  # a rate-limited loss awaiting CreditsDrained

    @property
    def live(self) -> bool:
        """A WebSocket is open (setting up, restoring or connected)."""
        return self.state in _LIVE

    def handle(self, event: Event, now: float) -> list[Action]:
        """Take one event; returns the actions to carry out, in order. InvalidTransition if the table
        does not allow `event` in the current state."""
        kind = type(event)
        targets = TABLE[self.state].get(kind)
        if targets is None:
            names = ", ".join(sorted(t.__name__ for t in TABLE[self.state])) or "nothing"
            raise InvalidTransition(
                f"connection state {self.state.value!r} does not accept {kind.__name__}; it accepts: {names}"
            )
        step: Step = getattr(self, f"_on_{kind.__name__.lower()}")(event, now)
        target, actions = step
        if target not in targets:  # a handler chose a state the table does not list: a bug here
            raise InvalidTransition(f"{self.state.value!r} + {kind.__name__} cannot go to {target.value!r}")
        self.state = target
        return actions

    # --- one method per event type ---------------------------------------------------------------

    def _on_connect(self, _e: Connect, _now: float) -> Step:
        self.backoff.attempts = 0
        return S.CONNECTING, [OpenSocket()]

    def _on_opened(self, _e: Opened, now: float) -> Step:
        self._opened = True
        self.backoff.connected(now)
        return S.SETTING_UP, [RunSetup()]

    def _on_setup(self, _e: SetUp, _now: float) -> Step:
        return S.RESTORING, [Restore()]

    def _on_restored(self, _e: Restored, _now: float) -> Step:
        return S.CONNECTED, [GoLive(self.backoff.attempts)]

    def _on_replace(self, e: Replace, _now: float) -> Step:
        if self.state in _LIVE:
            if self._drop_reason is None:
                self._drop_reason = e.reason
            self._at_once = self._at_once or e.at_once
            return self.state, [DropSocket(e.abort)]
        if self.state is S.RECONNECTING and e.at_once:
            return S.CONNECTING, [OpenSocket()]
        return self.state, []  # connecting: the attempt under way is the new connection; closing: moot

    def _on_lost(self, e: Lost, now: float) -> Step:
        reason = self._drop_reason or e.error
        self._drop_reason = None
        why = failure.explain(reason)
        if e.rate_limited and why.category is failure.Category.RECOVERABLE:
            why = failure.Explanation(
                failure.Category.RATE_LIMITED,
                why.message,
                "The exchange said to slow down on this connection before it ended: reconnecting once the "
                "rate-limit credits have refilled, plus jitter.",
            )
        ended: list[Action] = [ConnectionEnded(reason, why, notify=self._opened)]
        if self._opened:
            self._opened = False
            self.backoff.disconnected(now)
        if self.state is S.CLOSING:
            return S.CLOSING, ended
        stop = self._give_up(why)
        if stop is not None:
            return S.CLOSED, [*ended, GiveUp(stop)]
        if why.category is failure.Category.RATE_LIMITED and not self._at_once:
            self._waiting = why
            return S.RECONNECTING, [*ended, DrainCredits()]
        return S.RECONNECTING, [*ended, self._wait(why)]

    def _on_creditsdrained(self, e: CreditsDrained, _now: float) -> Step:
        why, self._waiting = self._waiting, None
        if why is None:
            raise InvalidTransition("CreditsDrained without a DrainCredits before it")
        refill = self.backoff.cap if e.refill_s is None else e.refill_s  # no limiter: the longest wait
        delay = self.backoff.after_rate_limit(self._rng, refill)
        return S.RECONNECTING, [WaitToRetry(delay, self.backoff.attempts, why)]

    def _on_retrydue(self, _e: RetryDue, _now: float) -> Step:
        return S.CONNECTING, [OpenSocket()]

    def _on_close(self, _e: Close, _now: float) -> Step:
        self._waiting = None
        if self.state is S.IDLE:
            return S.CLOSED, [Finish()]
        return S.CLOSING, []

    def _on_closed(self, _e: Closed, _now: float) -> Step:
        return S.CLOSED, [Finish()]

    # --- decisions -------------------------------------------------------------------------------

    def _give_up(self, why: failure.Explanation) -> ConnectFailed | None:
        if why.fatal:
            return ConnectFailed(why.message, why.advice, True)
        if not self.policy.reconnect_on_error:
            return ConnectFailed(
                why.message, "Not retrying: reconnect_on_error is off; call connect() to try again.", False
            )
        if self.backoff.exhausted():
            advice = f"Gave up after {self.backoff.attempts} retries (max_retries); {why.advice}"
            return ConnectFailed(why.message, advice, False)
        return None

    def _wait(self, why: failure.Explanation) -> WaitToRetry:
        if self._at_once:
            self._at_once = False
            return WaitToRetry(0.0, self.backoff.attempts, why)
        return WaitToRetry(self.backoff.next_delay(self._rng), self.backoff.attempts, why)
