"""Heartbeat strategies as data, and the monitor that turns time and frames into verdicts and deadlines.

`KINDS` is the one table of heartbeat kinds, venue method names included (nowhere else in the client):
- deribit:   after connect ask the server for heartbeats (`public/set_heartbeat`); answer each
             `test_request` at once with `public/test`; no message at all for 2 intervals → the
             server's heartbeat protocol is broken: replace the connection.
- ping_pong: send a WebSocket ping with a unique payload every interval; RTT from its pong; a ping left
             unanswered for an interval is a miss; `max_misses` misses in a row → dead.
- binance:   the server pings and the WebSocket layer answers; replace the connection before the
             server's 24 h limit.
- none:      no checks at all (a silent link is never detected: use only when something else watches it).

Every kind but `none` also runs active liveness (`feeder.core.liveness`: pings while silent, a request
when a steady link goes quiet, dead when nothing proves the link within `liveness_timeout`). For
Deribit the request is `public/test`, named here (`probe_method`).

The monitor is pure: the shell calls `check(now, last_frame, last_message)` when the previous check
said to (`next_at`), acts on the verdict (send a ping, replace the connection) and checks again. Times
are seconds on the wall clock the receive path reads for every frame. Nothing runs between deadlines,
so an idle connection costs a timer wake-up and a ping per `liveness_interval`, a busy one a wake-up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, NamedTuple

from feeder.core.liveness import Act, Liveness


@dataclass(frozen=True)
class HeartbeatKind:
    name: str
    setup_method: str | None = None  # request sent after connect: params {"interval": seconds}
    server_method: str | None = None  # notification method the server's heartbeats arrive with
    answers: Mapping[str, str] = field(default_factory=dict)  # server heartbeat type -> reply method
    client_pings: bool = False  # ping every interval
    silence_intervals: float | None = None  # dead after this many intervals without any message
    max_age: float | None = None  # replace the connection after this many seconds
    probes: bool = True  # active liveness (liveness_interval / liveness_timeout)
    probe_method: str | None = None  # the request that asks the exchange's application whether it is there


KINDS: dict[str, HeartbeatKind] = {
    "deribit": HeartbeatKind(
        "deribit",
        setup_method="public/set_heartbeat",
        server_method="heartbeat",
        answers={"test_request": "public/test"},
        silence_intervals=2.0,
        probe_method="public/test",
    ),
    "ping_pong": HeartbeatKind("ping_pong", client_pings=True),
    "binance": HeartbeatKind("binance", max_age=24 * 3600 - 600),
    "none": HeartbeatKind("none", probes=False),
}


class Verdict(Enum):
    OK = "ok"
    PING = "ping"  # send the interval's WebSocket ping now (payload from `ping_sent`)
    PROBE = "probe"  # the link is silent: send a liveness ping now (payload from `probe_sent`)
    REQUEST = "request"  # a steady link went quiet: send `kind.probe_method` now, then `request_sent`
    DEAD = "dead"  # the link is dead: replace the connection
    ROTATE = "rotate"  # the link is fine but too old: replace it


class Check(NamedTuple):
    verdict: Verdict
    next_at: float | None  # when to check again (None: never, nothing can happen)


class HeartbeatMonitor:
    def __init__(
        self,
        kind: HeartbeatKind,
        interval: float,
        max_misses: int,
        now: float,
        liveness_interval: float | None = None,
        liveness_timeout: float = 1.5,
    ):
        self.kind, self.interval, self.max_misses = kind, interval, max_misses
        self.liveness = (
            Liveness(liveness_interval, liveness_timeout, kind.probe_method, now)
            if kind.probes and liveness_interval is not None
            else None
        )
        self.reason = ""
        self.misses = 0  # consecutive
        self.misses_total = 0
        self.pings_sent = 0
        self.pongs = 0
        self.server_heartbeats = 0
        self.answers_sent = 0
        self.last_sent = 0.0
        self.last_answered = 0.0
        self.rtt: float | None = None
        self._count = 0
        self._sent: dict[bytes, float] = {}  # payload -> sent at, of the last interval ping and probe
        self.reset(now)

    def reset(self, now: float) -> None:
        """A new connection opened at `now`."""
        self._opened = now
        self._ping_at: float | None = None  # outstanding interval ping sent at
        self._ping_payload = b""
        self._probe_payload = b""
        self._last_ping = now
        self._sent.clear()
        self.misses = 0
        if self.liveness is not None:
            self.liveness.reset(now)

    def setup_request(self) -> tuple[str, dict[str, Any]] | None:
        """The request to send right after connecting, if this kind has one."""
        if self.kind.setup_method is None:
            return None
        seconds = int(self.interval) if float(self.interval).is_integer() else self.interval
        return self.kind.setup_method, {"interval": seconds}

    def on_server_heartbeat(self, params: Any, now: float) -> str | None:
        """A heartbeat notification arrived; returns the method to answer with, if any."""
        self.server_heartbeats += 1
        kind = params.get("type") if isinstance(params, dict) else None
        return self.kind.answers.get(kind) if isinstance(kind, str) else None

    def answer_sent(self, now: float) -> None:
        self.answers_sent += 1
        self.last_sent = now

    def answer_acknowledged(self, sent_at: float, now: float) -> None:
        self.last_answered = now
        self.rtt = now - sent_at

    # --- pings -----------------------------------------------------------------------------------

    def ping_sent(self, now: float) -> bytes:
        """The interval ping goes out now; returns its unique payload."""
        self.pings_sent += 1
        self._ping_at = self._last_ping = now
        self._ping_payload = self._payload(b"hb", now)
        return self._ping_payload

    def probe_sent(self, now: float) -> bytes:
        """A liveness ping goes out now; returns its unique payload."""
        assert self.liveness is not None
        self.liveness.ping_sent(now)
        self._sent.pop(self._probe_payload, None)  # one outstanding: a server that never pongs costs nothing
        self._probe_payload = self._payload(b"probe", now)
        return self._probe_payload

    def request_sent(self, now: float) -> None:
        """The liveness request (`kind.probe_method`) went out now."""
        assert self.liveness is not None
        self.liveness.request_sent(now)
        self.last_sent = now

    def _payload(self, prefix: bytes, now: float) -> bytes:
        self._count += 1
        self.last_sent = now
        payload = b"%s-%d" % (prefix, self._count)
        self._sent[payload] = now
        return payload

    def pong(self, payload: bytes, now: float) -> None:
        """A pong arrived at `now`; one that answers a ping of ours gives the round-trip time."""
        sent_at = self._sent.pop(payload, None)
        if sent_at is None:
            return
        self.pongs += 1
        self.last_answered = now
        self.rtt = now - sent_at
        if self.liveness is not None:
            self.liveness.ponged()
        if payload == self._ping_payload:
            self._ping_at = None
            self.misses = 0

    # --- verdicts --------------------------------------------------------------------------------

    def overdue(self, now: float, last_frame: float, last_message: float) -> bool:
        """Whether `check` would find the link dead now (no side effects): the shell then makes sure
        that nothing is waiting unread before it lets the verdict stand."""
        intervals = self.kind.silence_intervals
        if intervals is not None and now > max(last_message, self._opened) + intervals * self.interval:
            return True
        return self.liveness is not None and self.liveness.overdue(now, last_frame, last_message)

    def check(self, now: float, last_frame: float, last_message: float) -> Check:
        """What to do now, and when to look again. `last_frame`: when anything (data, pong, any byte)
        last arrived; `last_message`: when the last data message arrived."""
        kind, due = self.kind, []
        if kind.max_age is not None:
            rotate_at = self._opened + kind.max_age
            if now >= rotate_at:
                self.reason = f"connection is {now - self._opened:.0f} s old (limit {kind.max_age:.0f} s)"
                return Check(Verdict.ROTATE, None)
            due.append(rotate_at)
        if kind.silence_intervals is not None:
            quiet_since = max(last_message, self._opened)
            dead_at = quiet_since + kind.silence_intervals * self.interval
            if now > dead_at:
                self.misses = int((now - quiet_since) // self.interval)
                self.misses_total += 1
                self.reason = (
                    f"no message for {now - quiet_since:.1f} s (heartbeat interval {self.interval:g} s)"
                )
                return Check(Verdict.DEAD, None)
            due.append(dead_at)
        for verdict in (self._live(now, last_frame, last_message, due), self._interval_ping(now, due)):
            if verdict is not Verdict.OK:
                return Check(verdict, None if verdict is Verdict.DEAD else now)
        return Check(Verdict.OK, min(due) if due else None)

    def _live(self, now: float, last_frame: float, last_message: float, due: list[float]) -> Verdict:
        if self.liveness is None:
            return Verdict.OK
        act, next_at = self.liveness.check(now, last_frame, last_message)
        if act is Act.DEAD:
            self.misses_total += 1
            self.reason = self.liveness.reason
            return Verdict.DEAD
        if next_at is not None:
            due.append(next_at)
        return _VERDICTS[act]

    def _interval_ping(self, now: float, due: list[float]) -> Verdict:
        if not self.kind.client_pings:
            return Verdict.OK
        if self._ping_at is not None and now - self._ping_at >= self.interval:
            self._sent.pop(self._ping_payload, None)
            self._ping_at = None
            self.misses += 1
            self.misses_total += 1
            if self.misses >= self.max_misses:
                self.reason = f"{self.misses} pings in a row unanswered (interval {self.interval:g} s)"
                return Verdict.DEAD
        if self._ping_at is not None:
            due.append(self._ping_at + self.interval)
            return Verdict.OK
        if now - self._last_ping >= self.interval:
            return Verdict.PING
        due.append(self._last_ping + self.interval)
        return Verdict.OK

    def health(self) -> dict[str, Any]:
        return {
            "kind": self.kind.name,
            "interval": self.interval,
            "last_sent": self.last_sent,
            "last_answered": self.last_answered,
            "rtt": self.rtt,
            "misses": self.misses,
            "misses_total": self.misses_total,
            "pings_sent": self.pings_sent,
            "probes_sent": 0 if self.liveness is None else self.liveness.pings_sent,
            "probe_requests_sent": 0 if self.liveness is None else self.liveness.requests_sent,
            "pongs": self.pongs,
            "server_heartbeats": self.server_heartbeats,
            "answers_sent": self.answers_sent,
        }


_VERDICTS = {Act.OK: Verdict.OK, Act.PING: Verdict.PROBE, Act.REQUEST: Verdict.REQUEST}
