"""Heartbeat strategies as data, and the monitor that turns time and frames into verdicts.

`KINDS` is the one table of heartbeat kinds, venue method names included (nowhere else in the client):
- deribit:   after connect ask the server for heartbeats (`public/set_heartbeat`); answer each
             `test_request` at once with `public/test`; no frame at all for 2 intervals → the link is dead.
- ping_pong: send a WebSocket ping with a unique payload every interval; RTT from its pong; a ping left
             unanswered for an interval is a miss; `max_misses` misses in a row → dead.
- binance:   the server pings and the WebSocket layer answers; when the link has been silent for an
             interval we probe with a ping, unanswered for another interval → dead; replace the
             connection before the server's 24 h limit.
- none:      no checks (a silent link is never detected: use only when something else watches it).

The monitor is pure: the shell calls `tick(now, last_rx)` a few times per interval and acts on the
verdict (send a ping, replace the connection). Times are seconds on the wall clock the receive path
already reads for every frame.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


@dataclass(frozen=True)
class HeartbeatKind:
    name: str
    setup_method: str | None = None  # request sent after connect: params {"interval": seconds}
    server_method: str | None = None  # notification method the server's heartbeats arrive with
    answers: Mapping[str, str] = field(default_factory=dict)  # server heartbeat type -> reply method
    client_pings: bool = False  # ping every interval
    probe_when_silent: bool = False  # ping only after an interval of silence
    silence_intervals: float | None = None  # dead after this many intervals without any frame
    max_age: float | None = None  # replace the connection after this many seconds


KINDS: dict[str, HeartbeatKind] = {
    "deribit": HeartbeatKind(
        "deribit",
        setup_method="public/set_heartbeat",
        server_method="heartbeat",
        answers={"test_request": "public/test"},
        silence_intervals=2.0,
    ),
    "ping_pong": HeartbeatKind("ping_pong", client_pings=True),
    "binance": HeartbeatKind("binance", probe_when_silent=True, max_age=24 * 3600 - 600),
    "none": HeartbeatKind("none"),
}


class Verdict(Enum):
    OK = "ok"
    PING = "ping"  # send a WebSocket ping now (payload from `ping_sent`)
    DEAD = "dead"  # the link is dead: replace the connection
    ROTATE = "rotate"  # the link is fine but too old: replace it


class HeartbeatMonitor:
    def __init__(self, kind: HeartbeatKind, interval: float, max_misses: int, now: float):
        self.kind, self.interval, self.max_misses = kind, interval, max_misses
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
        self._pings = 0
        self.reset(now)

    def reset(self, now: float) -> None:
        """A new connection opened at `now`."""
        self._opened = now
        self._ping_at: float | None = None  # outstanding ping sent at
        self._last_ping = now
        self.misses = 0

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

    def ping_sent(self, now: float) -> bytes:
        """Record a ping going out now; returns its unique payload."""
        self._pings += 1
        self.pings_sent += 1
        self._ping_at = self._last_ping = self.last_sent = now
        return b"hb-%d" % self._pings

    def pong(self, sent_at: float, now: float) -> None:
        """The pong for the ping sent at `sent_at` arrived at `now`."""
        self.pongs += 1
        self.misses = 0
        self.last_answered = now
        self.rtt = now - sent_at
        if self._ping_at == sent_at:
            self._ping_at = None

    def tick(self, now: float, last_rx: float) -> Verdict:
        """What to do now, given the time the last frame of any kind was received."""
        kind = self.kind
        if kind.max_age is not None and now - self._opened >= kind.max_age:
            self.reason = f"connection is {now - self._opened:.0f} s old (limit {kind.max_age:.0f} s)"
            return Verdict.ROTATE
        if kind.silence_intervals is not None:
            silent = now - max(last_rx, self._opened)
            if silent > kind.silence_intervals * self.interval:
                self.misses = int(silent // self.interval)
                self.misses_total += 1
                self.reason = f"no frame for {silent:.1f} s (heartbeat interval {self.interval:g} s)"
                return Verdict.DEAD
        if kind.client_pings or kind.probe_when_silent:
            return self._ping_verdict(now, last_rx)
        return Verdict.OK

    def _ping_verdict(self, now: float, last_rx: float) -> Verdict:
        if self._ping_at is not None and now - self._ping_at >= self.interval:
            self._ping_at = None
            self.misses += 1
            self.misses_total += 1
            if self.misses >= self.max_misses:
                self.reason = f"{self.misses} pings in a row unanswered (interval {self.interval:g} s)"
                return Verdict.DEAD
        if self._ping_at is not None:
            return Verdict.OK
        if self.kind.client_pings:
            due = now - self._last_ping >= self.interval
        else:
            due = now - max(last_rx, self._opened, self._last_ping) >= self.interval
        return Verdict.PING if due else Verdict.OK

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
            "pongs": self.pongs,
            "server_heartbeats": self.server_heartbeats,
            "answers_sent": self.answers_sent,
        }
