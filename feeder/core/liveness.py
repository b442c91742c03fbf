"""Active liveness: a connection proves itself within `timeout` seconds, or it is dead. Pure.

Two proofs, checked independently of the exchange's own heartbeat protocol (which stays, for its sake):
- the transport: any frame at all (data, pong, anything). While no frame has arrived for `interval`
  seconds a WebSocket ping goes out, again every `interval`; nothing for `timeout` seconds and the link
  is dead. Pings cost no exchange credits. A busy link sends none: its frames are the proof.
- the exchange's application behind it: a message. A link whose WebSocket layer still answers pings
  while the exchange behind it has stopped (nothing sent, requests unanswered) passes the first proof
  forever. So when a link that has been carrying messages steadily (no silence of `interval` for
  `busy_after` seconds) goes quiet for `interval`, one request (`request_method`, Deribit's
  `public/test`, paid from the rate-limit budget) asks the application; no message at all within
  `timeout` of the last one and the link is dead. Quiet alone is never death: markets pause, and the
  answered request ends the suspicion (one request per pause, since the link is no longer steady).
- a server that answers no ping is asked with the request instead: until a pong has been seen on the
  connection, the transport rule does not apply and every `interval` of quiet sends the request.
  A ping goes out when the connection opens, so a server that does pong is known within a round trip.

The shell calls `check(now, last_frame, last_message)` at the `next_at` it was given (or sooner, when a
pong arrives), sends what the verdict says (`ping_sent` / `request_sent`) and checks again.
"""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple

BUSY_INTERVALS = 4  # a link is steady after this many intervals with no quiet interval


class Act(Enum):
    OK = "ok"
    PING = "ping"  # send a WebSocket ping now, then call `ping_sent`
    REQUEST = "request"  # send `request_method` now, then call `request_sent`
    DEAD = "dead"  # the link failed its proof: replace it (`reason` says why)


class Step(NamedTuple):
    act: Act
    next_at: float | None


class Liveness:
    def __init__(self, interval: float, timeout: float, request_method: str | None, now: float):
        if not 0 < interval < timeout:
            raise ValueError(f"liveness needs 0 < interval < timeout, got {interval} and {timeout}")
        self.interval, self.timeout, self.request_method = interval, timeout, request_method
        self.busy_after = BUSY_INTERVALS * interval
        self.reason = ""
        self.pings_sent = 0
        self.requests_sent = 0
        self.deaths = 0
        self.reset(now)

    def reset(self, now: float) -> None:
        """A new connection opened at `now`."""
        self._opened = now
        self._ponged = False  # the server answers pings (seen on this connection)
        self._ping_at: float | None = None  # the last ping of the current silence (or of the opening)
        self._pinged_at: float | None = None  # the first ping no frame has followed yet
        self._request_at: float | None = None  # an unanswered request sent at
        self._steady_since: float | None = None  # messages without a quiet interval since

    def ponged(self) -> None:
        self._ponged = True

    def ping_sent(self, now: float) -> None:
        self.pings_sent += 1
        self._ping_at = now
        if self._pinged_at is None:
            self._pinged_at = now

    def request_sent(self, now: float) -> None:
        self.requests_sent += 1
        self._request_at = now

    @property
    def _transport_rule(self) -> bool:
        return self._ponged or self.request_method is None

    def overdue(self, now: float, last_frame: float, last_message: float) -> bool:
        """Whether `check` would find the link dead now (no side effects)."""
        deadlines = (self._frame_deadline(last_frame), self._request_deadline(last_message))
        return any(at is not None and now >= at for at in deadlines)

    def _frame_deadline(self, last_frame: float) -> float | None:
        """When the transport rule finds the link dead; None: no ping waits for an answer."""
        pinged = self._pinged_at
        if pinged is None or last_frame > pinged or not self._transport_rule:
            return None
        return self._deadline(last_frame, pinged)

    def _request_deadline(self, last_message: float) -> float | None:
        """When the application rule finds the link dead; None: no request waits for an answer."""
        asked = self._request_at
        if asked is None or last_message >= asked:
            return None
        return self._deadline(last_message, asked)

    def _deadline(self, last: float, asked_at: float) -> float:
        """`timeout` after the last proof, but never sooner than `timeout - interval` after the ping or
        request went out: a starved event loop that sent it late must not blame the peer."""
        return max(max(last, self._opened) + self.timeout, asked_at + self.timeout - self.interval)

    def check(self, now: float, last_frame: float, last_message: float) -> Step:
        due: list[float] = []
        quiet_frames = max(last_frame, self._opened)
        quiet_messages = max(last_message, self._opened)
        if self._pinged_at is not None and last_frame > self._pinged_at:
            self._pinged_at = None  # answered: any frame after the ping proves the transport
        if self._request_at is not None and last_message >= self._request_at:
            self._request_at = None  # answered: any message after the request proves the application
        dead_at = self._frame_deadline(last_frame)
        if dead_at is not None:
            if now >= dead_at:
                return self._dead(f"no frame for {now - quiet_frames:.1f} s, pings unanswered")
            due.append(dead_at)
        asked, dead_at = self._request_at, self._request_deadline(last_message)
        if asked is not None and dead_at is not None:
            if now >= dead_at:
                return self._dead(
                    f"no message for {now - quiet_messages:.1f} s, {self.request_method} unanswered "
                    f"for {now - asked:.1f} s"
                )
            due.append(dead_at)
        act = self._ask(now, quiet_messages, due)
        if act is Act.OK:
            act = self._ping(now, quiet_frames, due)
        return Step(act, now if act is not Act.OK else min(due))

    def _ask(self, now: float, quiet_messages: float, due: list[float]) -> Act:
        quiet_at = quiet_messages + self.interval
        if now < quiet_at:
            if self._steady_since is None:
                self._steady_since = quiet_messages
            due.append(quiet_at)
            return Act.OK
        steady = self._steady_since is not None and quiet_messages - self._steady_since >= self.busy_after
        self._steady_since = None
        if self.request_method is None or self._request_at is not None:
            return Act.OK
        if steady or not self._ponged:
            return Act.REQUEST
        return Act.OK

    def _ping(self, now: float, quiet_frames: float, due: list[float]) -> Act:
        if self._ping_at is None and not self._ponged:
            return Act.PING  # the opening ping: does this server answer pings at all?
        ping_at = quiet_frames + self.interval
        if self._ping_at is not None and self._ping_at >= quiet_frames:
            ping_at = self._ping_at + self.interval  # this silence was pinged already
        if now >= ping_at:
            return Act.PING
        due.append(ping_at)
        return Act.OK

    def _dead(self, reason: str) -> Step:
        self.deaths += 1
        self.reason = reason
        return Step(Act.DEAD, None)
