"""A worker process: one connection, its rings, and a heartbeat to the supervisor.

Runs uvloop, a `Feed` (client + Deribit adapter + ring writers, attached to rings the supervisor owns),
and two small loops: a heartbeat with health figures to the supervisor at least every 250 ms, and the
supervisor's requests (RPCs, stop, and `add` / `remove` of instruments at run time: the universe)
read from the pipe. Listings and ends the exchange announces (instrument.state) go up the pipe as
`instrument_state` messages; the supervisor decides what to do with them. The worker ignores SIGINT (a Ctrl-C reaches the
whole process group; the supervisor decides how to shut down) and exits when the pipe closes, so a
SIGKILLed supervisor never leaves workers behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import uvloop

from feeder.client import Client, ClientConfig
from feeder.core.arbiter import behind_percentile
from feeder.core.health import HealthInputs, score
from feeder.core.silence import ChannelReport
from feeder.errors import FeederError
from feeder.exchanges.deribit.channels import ChannelConfig
from feeder.exchanges.deribit.costs import DeribitCosts
from feeder.exchanges.deribit.credentials import Credentials
from feeder.exchanges.deribit.notices import InstrumentState
from feeder.exchanges.deribit.session import SessionConfig
from feeder.runtime import logs, wire
from feeder.runtime.feed import Feed, FeedConfig
from feeder.runtime.handle import BOOK_METHOD

log = logging.getLogger("feeder.worker")

HEARTBEAT_EVERY_S = 0.1
RING_FIGURES_EVERY_S = 1.0  # per-ring figures are looked at this often (and sent when they changed)
EXIT_FATAL = 3  # the feed cannot start (bad credentials, refused URL): restarting will not help soon


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs, sent to the spawned process (credentials travel pickled over a pipe,
    never on a command line)."""

    index: int
    instance: str
    rings: tuple[str, ...]  # rings of one instrument each, the instrument named by the ring
    url: str
    interval: str | None
    heartbeat_interval: float
    cancel_on_disconnect: str
    credentials: Credentials | None
    limits_dir: str
    record_dir: str | None
    log_level: str
    busy_poll: bool = False
    redundancy: int = 1  # connections (legs) receiving every channel
    liveness_interval: float = 0.5  # 0: off
    liveness_timeout: float = 1.5
    audit_interval: float = 60.0
    crossed: str = "resync"
    depth: dict[str, int] = field(default_factory=dict)  # book ring name or glob -> levels per side
    costs: DeribitCosts = field(default_factory=DeribitCosts)  # the account's limits, or the tier's
    members: tuple[tuple[str, str, int], ...] = ()  # (ring, instrument, instrument_id): chain rings and more
    ids: dict[str, int] = field(default_factory=dict)  # instrument -> instrument_id
    indexes: dict[str, str] = field(default_factory=dict)  # instrument -> price index
    watch: tuple[str, ...] = ()  # instrument.state.* and platform_state channels

    def feed_config(self) -> FeedConfig:
        record_to = None
        if self.record_dir:
            record_to = str(
                Path(self.record_dir) / f"worker{self.index}-{time.strftime('%Y%m%dT%H%M%S')}.jsonl"
            )
        client = ClientConfig(
            url=self.url,
            heartbeat="deribit",
            heartbeat_interval=self.heartbeat_interval,
            liveness_interval=self.liveness_interval or None,
            liveness_timeout=self.liveness_timeout,
            record_to=record_to,
            # Deribit's limits are per account: every worker draws from one shared bucket
            rate_limit=self.costs.rate_limit(shared_dir=self.limits_dir, shared_name="deribit"),
        )
        cod = None if self.cancel_on_disconnect == "off" else self.cancel_on_disconnect
        return FeedConfig(
            client=client,
            rings=self.rings,
            members=self.members,
            ids=self.ids,
            indexes=self.indexes,
            watch=self.watch,
            channels=ChannelConfig(interval=self.interval, depth=self.depth),
            session=SessionConfig(
                credentials=self.credentials,
                cancel_on_disconnect=cod,
                client_name=f"feeder-w{self.index}" if self.redundancy > 1 else None,  # legs: -a, -b
            ),
            attach_rings=True,
            instance=self.instance,
            audit_interval=self.audit_interval,
            crossed=self.crossed,
            redundancy=self.redundancy,
        )


def worker_main(conn: Connection) -> None:
    """Entry point of a spawned worker process.

    The process starts as a spare: its imports are done and it waits for a WorkerSpec on the pipe, so a
    replacement for a dead worker only has to connect (the supervisor keeps one spare ready).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        spec: WorkerSpec = conn.recv()
    except (EOFError, OSError, KeyboardInterrupt):
        os._exit(0)  # the supervisor closed the pipe of an unused spare
    logs.configure(spec.log_level, f"%(asctime)s worker{spec.index} %(levelname)s %(name)s: %(message)s")
    try:
        code = uvloop.run(Worker(spec, conn).run())
    except KeyboardInterrupt:
        code = 0
    os._exit(code)  # skip interpreter teardown: the rings and the pipe are already closed


def _keep_polling(loop: asyncio.AbstractEventLoop) -> None:
    """Keep one callback always ready, so every loop turn polls with a zero timeout instead of sleeping:
    the core never idles, and a frame is picked up without the tens of microseconds a wake-up costs."""

    def again() -> None:
        loop.call_soon(again)

    loop.call_soon(again)


class Worker:
    def __init__(self, spec: WorkerSpec, conn: Connection):
        self.spec, self.conn = spec, conn
        self.feed: Feed | None = None
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_frames = -1
        self._last_data = time.monotonic()
        self._ring_figures_due = 0.0
        self._ring_figures_sent: tuple[dict[str, int], dict[str, dict[str, int]]] | None = None
        self._channel_report = ChannelReport()
        self._started = False
        self._early: list[dict[str, Any]] = []  # add / remove messages that came before the feed started
        self._legs_before: list[tuple[int, list[int]]] = []  # per leg: wins and behind when last sent

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._stop.set)
        loop.add_reader(self.conn.fileno(), self._on_pipe)
        if self.spec.busy_poll:
            _keep_polling(loop)
        self.feed = Feed(self.spec.feed_config(), on_event=self._on_event, on_universe=self._on_universe)
        hb = loop.create_task(self._heartbeat_loop())
        try:
            started = await self._start_unless_stopped(self.feed)
        except FeederError as exc:
            self._send({"type": "fatal", "error": wire.error_to_wire(exc)})
            hb.cancel()
            return EXIT_FATAL
        if not started:  # told to stop while still connecting (or backing off against a dead exchange)
            hb.cancel()
            self._send({"type": "stopped"})
            return 0
        self._started = True
        for message in self._early:
            self._on_message(message)
        self._early.clear()
        self._send({"type": "ready"})
        await self._stop.wait()
        hb.cancel()
        await self.feed.stop()
        self._send({"type": "stopped"})
        return 0

    async def _start_unless_stopped(self, feed: Feed) -> bool:
        """Start the feed; False if a stop came first (the half-started feed is shut down at once)."""
        loop = asyncio.get_running_loop()
        start = loop.create_task(feed.start(), name="feed-start")
        stop = loop.create_task(self._stop.wait())
        await asyncio.wait((start, stop), return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if start.done():
            start.result()
            return True
        start.cancel()
        with contextlib.suppress(asyncio.CancelledError, FeederError):
            await start
        return False

    # --- pipe --------------------------------------------------------------------------------------

    def _send(self, message: dict[str, Any]) -> None:
        try:
            self.conn.send(message)
        except (OSError, ValueError):  # the supervisor is gone: stop
            self._stop.set()

    def _on_pipe(self) -> None:
        try:
            message = self.conn.recv()
        except (EOFError, OSError):
            asyncio.get_running_loop().remove_reader(self.conn.fileno())
            self._stop.set()
            return
        if message.get("type") in ("add", "remove") and not self._started:
            self._early.append(message)
        else:
            self._on_message(message)

    def _on_message(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "rpc":
            task = asyncio.get_running_loop().create_task(self._rpc(message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif kind == "add":
            self._add(message)
        elif kind == "remove":
            task = asyncio.get_running_loop().create_task(self._remove(message["instruments"]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif kind == "stop":
            self._stop.set()

    def _add(self, message: dict[str, Any]) -> None:
        """More instruments to serve (the supervisor created their rings first)."""
        try:
            if self.feed is None:
                raise FeederError("the worker is not running its feed yet")
            self.feed.add(
                message["members"], message.get("ids"), message.get("indexes"), message.get("watch", ())
            )
        except Exception as exc:  # never let a bad message kill the worker; the supervisor hears of it
            log.exception("could not add %d routes", len(message.get("members", ())))
            self._send({"type": "event", "name": "add_failed", "data": {"reason": repr(exc)}})

    async def _remove(self, instruments: list[str]) -> None:
        """Instruments that ended: FINAL records, unsubscribe, writers of unused rings closed."""
        closed: list[str] = []
        try:
            if self.feed is not None:
                closed = await self.feed.remove(instruments)
        except Exception:
            log.exception("could not remove %d instruments", len(instruments))
        self._send({"type": "removed", "instruments": instruments, "rings": closed})

    def _on_universe(self, events: list[tuple[InstrumentState, str]]) -> None:
        self._send({"type": "instrument_state", "events": [(*event, channel) for event, channel in events]})

    async def _rpc(self, message: dict[str, Any]) -> None:
        rid = message["id"]
        try:
            if self.feed is None:
                raise FeederError("the worker is not running its feed yet")
            if message["method"] == BOOK_METHOD:  # from the adapter's memory, not the exchange
                params = message["params"]  # the supervisor resolved the instrument (requests.py)
                result = self.feed.adapter.book(params["instrument"], params.get("depth"))
            else:
                result = await self.feed.session.rpc(
                    message["method"], message.get("params"), message.get("timeout")
                )
            self._send({"type": "rpc", "id": rid, "result": result})
        except FeederError as exc:
            self._send({"type": "rpc", "id": rid, "error": wire.error_to_wire(exc)})
        except Exception as exc:  # never let one request kill the worker; the caller still gets an answer
            log.exception("rpc %s failed", message.get("method"))
            self._send({"type": "rpc", "id": rid, "error": {"type": "FeederError", "message": repr(exc)}})

    def _on_event(self, event: Any) -> None:
        if event.name in ("connected", "disconnected", "gave_up", "heartbeat_dead", "subscription_refused"):
            self._send({"type": "event", "name": event.name, "data": event.data})

    # --- heartbeat ---------------------------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        while True:
            self._send({"type": "hb", "health": self.health()})
            await asyncio.sleep(HEARTBEAT_EVERY_S)

    def health(self) -> dict[str, Any]:
        """Compact figures for health scoring and the status view, cheap enough for every heartbeat
        whatever the number of rings: the per-ring figures (gaps, audits) are looked at once a second
        and sent only when they changed (the supervisor keeps the last ones it got); so are the channels'
        message counts and last receive times (`feeder.core.silence`: only the channels that changed)."""
        feed = self.feed
        if feed is None:
            return {"connected": False}
        client, stats = feed.client, feed.adapter.stats
        m = client.metrics()
        now = time.monotonic()
        if m["frames_in"] != self._last_frames:
            self._last_frames, self._last_data = m["frames_in"], now
        lat = client.latency_stats()
        hb = client.heartbeat_health()
        limiter = m.get("limiter") or {}
        every = [m, *(c.metrics() for c in feed.clients[1:])]  # the legs' counts add up
        figures = {
            "connected": m["state"] == "connected",
            "state": m["state"],
            "authenticated": feed.session.authenticated,
            "pending": m["pending_requests"],
            "latency_p50_ms": 1000.0 * float(lat.get("p50") or 0.0),
            "latency_p99_ms": 1000.0 * float(lat.get("p99") or 0.0),
            "pressure": limiter.get("pressure", "none"),
            "heartbeat_misses": int(hb.get("misses", 0) or 0),
            "data_age_s": now - self._last_data,
            "frames_in": m["frames_in"],
            "reconnects": m["reconnects"],
            "rtt_ms": None if hb.get("rtt") is None else 1000.0 * float(hb["rtt"]),
            "rate_limit_events": sum(sum(x["rate_limit_events"].values()) for x in every),
            "refused_connects": sum(x["refused_connects"] for x in every),
            "errors": m["reconnects"] + m["request_timeouts"] + sum(m["bad_input"].values()),
            "gaps": stats.gaps,
            "rejected": stats.rejected,
            "channels": len(feed.adapter.routes),
        }
        if now >= self._ring_figures_due:
            self._ring_figures_due = now + RING_FIGURES_EVERY_S
            ring_figures = feed.adapter.ring_figures()
            if ring_figures != self._ring_figures_sent:
                self._ring_figures_sent = ring_figures
                figures["ring_gaps"], figures["audits"] = ring_figures
            channels = self._channel_report.changes(feed.channel_figures())
            if channels is not None:
                figures["channel_figures"] = channels
            if feed.legs is not None:
                figures["legs"] = self.leg_figures(feed)
        return figures

    def leg_figures(self, feed: Feed) -> list[dict[str, Any]]:
        """Per leg (redundancy 2), once a second: its connection's own health score, and how it fares in
        the arbitration, over the last second (win share, how far behind the winner its losses came) and
        in total. The worker-wide figures above are leg a's: the one that trades."""
        legs = feed.legs
        assert legs is not None
        names = ("a", "b")
        before = self._legs_before or [(0, [0] * len(s.behind)) for s in legs.stats]
        wins = [s.wins - b[0] for s, b in zip(legs.stats, before, strict=True)]
        joined = legs.joined()
        out = []
        for leg, (client, stats) in enumerate(zip(feed.clients, legs.stats, strict=True)):
            recent = [now - then for now, then in zip(stats.behind, before[leg][1], strict=True)]
            out.append(
                {
                    "name": names[leg],
                    **_connection_figures(client),
                    "books_joined": joined[leg],
                    "wins": stats.wins,
                    "losses": stats.losses,
                    "filled": stats.filled,
                    "expired": stats.expired,
                    "win_share": round(wins[leg] / sum(wins), 3) if sum(wins) else None,
                    "behind_p50_us": behind_percentile(recent, 0.5),
                    "behind_p99_us": behind_percentile(recent, 0.99),
                }
            )
        self._legs_before = [(s.wins, list(s.behind)) for s in legs.stats]
        return out


def _connection_figures(client: Client) -> dict[str, Any]:
    """One connection's state and its health score (`feeder.core.health`, from its own figures)."""
    m = client.metrics()
    lat, hb = client.latency_stats(), client.heartbeat_health()
    limiter = m.get("limiter") or {}
    connected = m["state"] == "connected"
    p99 = 1000.0 * float(lat.get("p99") or 0.0)
    misses = int(hb.get("misses", 0) or 0)
    inputs = HealthInputs(
        connected=connected,
        pending_requests=m["pending_requests"],
        latency_p99_ms=p99,
        pressure=limiter.get("pressure", "none"),
        heartbeat_misses=misses,
    )
    return {
        "connected": connected,
        "state": m["state"],
        "score": score(inputs),
        "latency_p50_ms": 1000.0 * float(lat.get("p50") or 0.0),
        "latency_p99_ms": p99,
        "heartbeat_misses": misses,
        "reconnects": m["reconnects"],
        "frames_in": m["frames_in"],
    }
