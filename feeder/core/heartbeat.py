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

Every kind but `none` also probes a silent link (`probe_after`, `probe_timeout`): after `probe_after`
seconds without any frame (data, pong, anything) it sends a WebSocket ping, and if still nothing at all
has arrived `probe_timeout` seconds after that ping, the link is dead. Silence of the data is normal
(a quiet option book sends nothing for minutes); an unanswered probe is not. A probe costs no exchange
credits and a quiet link one ping per `probe_after`.

The monitor is pure: the shell calls `check(now, last_frame, last_message)` when the previous check
said to (`next_at`), acts on the verdict (send a ping, replace the connection) and checks again. Times
are seconds on the wall clock the receive path reads for every frame. Nothing runs between deadlines,
so an idle connection costs a timer wake-up per probe and a busy one one per `probe_after`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, NamedTuple


@dataclass(frozen=True)
class HeartbeatKind:
    name: str
    setup_method: str | None = None  # request sent after connect: params {"interval": seconds}
    server_method: str | None = None  # notification method the server's heartbeats arrive with
    answers: Mapping[str, str] = field(default_factory=dict)  # server heartbeat type -> reply method
    client_pings: bool = False  # ping every interval
    silence_intervals: float | None = None  # dead after this many intervals without any message
    max_age: float | None = None  # replace the connection after this many seconds
    probes: bool = True  # ping a silent link (probe_after / probe_timeout)


KINDS: dict[str, HeartbeatKind] = {
    "deribit": HeartbeatKind(
        "deribit",
        setup_method="public/set_heartbeat",
        server_method="heartbeat",
        answers={"test_request": "public/test"},
        silence_intervals=2.0,
    ),
    "ping_pong": HeartbeatKind("ping_pong", client_pings=True),
    "binance": HeartbeatKind("binance", max_age=24 * 3600 - 600),
    "none": HeartbeatKind("none", probes=False),
}


class Verdict(Enum):
    OK = "ok"
    PING = "ping"  # send the interval's WebSocket ping now (payload from `ping_sent`)
    PROBE = "probe"  # the link is silent: send a probe ping now (payload from `probe_sent`)
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
        probe_after: float | None = None,
        probe_timeout: float = 1.0,
    ):
        self.kind, self.interval, self.max_misses = kind, interval, max_misses
        self.probe_after = probe_after if kind.probes else None
        self.probe_timeout = probe_timeout
        self.reason = ""
        self.misses = 0  # consecutive
        self.misses_total = 0
        self.pings_sent = 0
        self.probes_sent = 0
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
        self._probe_at: float | None = None  # outstanding probe sent at
        self._probe_payload = b""
        self._last_ping = now
        self._sent.clear()
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

    # --- pings -----------------------------------------------------------------------------------

    def ping_sent(self, now: float) -> bytes:
        """The interval ping goes out now; returns its unique payload."""
        self.pings_sent += 1
        self._ping_at = self._last_ping = now
        self._ping_payload = self._payload(b"hb", now)
        return self._ping_payload

    def probe_sent(self, now: float) -> bytes:
        """A probe goes out now; returns its unique payload."""
        self.probes_sent += 1
        self._probe_at = now
        self._sent.pop(self._probe_payload, None)
        self._probe_payload = self._payload(b"probe", now)
        return self._probe_payload

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
        probe_at = self._probe_at
        return probe_at is not None and last_frame < probe_at and now >= probe_at + self.probe_timeout

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
        for verdict in (self._probe(now, last_frame, due), self._interval_ping(now, due)):
            if verdict is not Verdict.OK:
                return Check(verdict, now)
        return Check(Verdict.OK, min(due) if due else None)

    def _probe(self, now: float, last_frame: float, due: list[float]) -> Verdict:
        if self.probe_after is None:
            return Verdict.OK
        if self._probe_at is not None and last_frame >= self._probe_at:
            self._probe_at = None  # answered: anything that arrived after the probe proves the link
        if self._probe_at is not None:
            dead_at = self._probe_at + self.probe_timeout
            if now >= dead_at:
                self.misses_total += 1
                silent = now - max(last_frame, self._opened)
                self.reason = (
                    f"no frame for {silent:.1f} s, a ping unanswered for {now - self._probe_at:.1f} s"
                )
                return Verdict.DEAD
            due.append(dead_at)
            return Verdict.OK
        probe_at = max(last_frame, self._opened) + self.probe_after
        if now >= probe_at:
            return Verdict.PROBE
        due.append(probe_at)
        return Verdict.OK

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
            "probes_sent": self.probes_sent,
            "pongs": self.pongs,
            "server_heartbeats": self.server_heartbeats,
            "answers_sent": self.answers_sent,
        }
