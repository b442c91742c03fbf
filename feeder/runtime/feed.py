"""One market-data feed: a connection client, the Deribit adapter and session, and ring writers.

The thin asyncio driver around the pure adapter. It connects, subscribes every channel of its rings,
hands every notification to `DeribitAdapter.feed` and publishes what comes back, and sends the
requests the adapter asks for (unsubscribe + subscribe of one channel after a gap). Workers run one
`Feed` each; a test or a script can run one directly:

    config = FeedConfig(client=ClientConfig(url=..., heartbeat="deribit"), rings=("book.BTC",))
    async with Feed(config) as feed:
        ...  # records flow into the rings; feed.metrics(), feed.session.buy(...)

Rules it keeps:
- The receive path does nothing but adapter.feed and publish; resubscriptions run in a background
  task that retries until the channel is subscribed again (a resubscription cut short by a
  disconnect is finished after the reconnect, since the client no longer restores that channel).
- On every disconnect the adapter's GAP records are published at once (readers learn immediately
  that the books are stale); the client's restore brings fresh snapshots after the reconnect.
- The live audit (`audit_interval` seconds per book, 0 = off): one `public/get_order_book` at a time,
  on this connection, spread evenly over time and books (`feeder.core.audit`), with depth at least
  the ring's levels. It is paid from the rate-limit budget at the lowest priority: it goes only when
  nothing waits in the limiter, no resync is running and at least half of the default bucket's
  credits are there, so it is admitted at once and never queues in front of an order, a subscription
  or a resync (orders and subscriptions have buckets of their own). The adapter judges the answer;
  a mismatch is published as GAP at once and the book resyncs like after a gap.
- Routes come from `rings` (one ring per instrument, the instrument named by the ring) and `members`
  ((ring, instrument, instrument_id): chain rings, or any ring with its id); `watch` adds the market's
  own channels (instrument.state.*, platform_state), whose listings and ends go to `on_universe`.
  `add()` and `remove()` change them at run time: new channels are subscribed (retried until they
  are), an instrument removed gets its FINAL records at once, its channels are unsubscribed and the
  writers of rings nothing feeds any more are closed.
- Rings are created (this process owns them) or, with `attach_rings`, attached as their writer (a
  supervisor owns them and they outlive this feed). Attaching takes over from the previous writer,
  which may have died mid-stream: a ring it left looking live is marked GAP at once (a GAP copy of a
  book, a MARKER|GAP record on an event ring), and a trades ring's last trade_seq seeds the gap check.
  `stop()` closes the client first, so the final GAP records are published, then the writers.
- `redundancy = 2`: two connections (legs, each a `Client` with its own heartbeat, backoff and login,
  named `<client_name>-a` / `-b` in public/hello) receive every channel, and every copy goes through
  `feeder.exchanges.deribit.legs.Legs` (the arbiter) before the one adapter; with 1 the receive path is
  the adapter's alone, unchanged. Orders, the live audit and `client`/`session` are leg a's (the second
  leg never enables cancel-on-disconnect: it never trades); resubscriptions and run-time channels go to
  each leg. Both legs' requests come out of the rate-limit budget of `ClientConfig.rate_limit`: shared by
  the account's every connection when it names a `shared_dir` (as workers do), else one budget per leg.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from feeder.client import Client, ClientConfig, Event, Hooks, Setup
from feeder.core.audit import AuditSchedule, spare_budget
from feeder.core.state import ConnState
from feeder.errors import ConfigError, FeederError, UsageError
from feeder.exchanges.deribit.adapter import DeribitAdapter, Emit
from feeder.exchanges.deribit.books import CROSSED_MODES
from feeder.exchanges.deribit.channels import ChannelConfig, ChannelMap
from feeder.exchanges.deribit.legs import Legs
from feeder.exchanges.deribit.notices import InstrumentState
from feeder.exchanges.deribit.session import (
    DeribitSession,
    SessionConfig,
    subscribe_method,
    unsubscribe_method,
)
from feeder.ring import RingWriter
from feeder.ring.chains import is_chain
from feeder.ring.marking import last_content, last_trades, mark_gap

log = logging.getLogger(__name__)

TICK_S = 0.01  # with redundancy: how often held copies are looked at while nothing arrives
AUDIT_RETRY_S = 1.0  # an audit that may not go now tries again this much later
Member = tuple[str, str, int]  # (ring, instrument, instrument_id)
LEG_NAMES = {1: ("",), 2: ("a", "b")}  # per redundancy: each leg's suffix to client_name and recordings


@dataclass(frozen=True)
class FeedConfig:
    """What one feed connects to, which rings it fills, and how."""

    client: ClientConfig
    rings: tuple[str, ...] = ()
    members: tuple[Member, ...] = ()
    ids: Mapping[str, int] = field(default_factory=dict)  # instrument -> id (rings' instruments, underlyings)
    indexes: Mapping[str, str] = field(default_factory=dict)  # instrument -> price index (platform locks)
    watch: tuple[str, ...] = ()  # instrument.state.{kind}.{currency}, platform_state
    channels: ChannelConfig = field(default_factory=ChannelConfig)
    session: SessionConfig = field(default_factory=SessionConfig)
    ring_capacity: int = 1 << 16
    attach_rings: bool = False  # True: the rings exist (a supervisor owns them); become their writer
    instance: str | None = None  # ring namespace; None: $FEEDER_INSTANCE or "default"
    resync_retry_s: float = 1.0  # wait between attempts when a resubscription fails
    audit_interval: float = 60.0  # seconds between audits of each book against the exchange; 0: off
    crossed: str = "resync"  # a crossed or locked book: "resync" (GAP, fresh snapshot) or "flag" (CROSSED)
    redundancy: int = 1  # connections receiving every channel (legs); 2: the first copy of a change wins

    def __post_init__(self) -> None:
        if not isinstance(self.client, ClientConfig):
            raise ConfigError("client", type(self.client).__name__, "a feeder.client.ClientConfig")
        if isinstance(self.rings, str) or not (self.rings or self.members or self.watch):
            raise ConfigError("rings", self.rings, "a non-empty tuple of ring names such as ('book.BTC',)")
        if self.resync_retry_s <= 0:
            raise ConfigError("resync_retry_s", self.resync_retry_s, "a number of seconds > 0")
        if not isinstance(self.audit_interval, int | float) or not self.audit_interval >= 0:
            raise ConfigError("audit_interval", self.audit_interval, "seconds per book >= 0 (0: no audits)")
        if self.crossed not in CROSSED_MODES:
            raise ConfigError("crossed", self.crossed, f"one of {', '.join(CROSSED_MODES)}")
        if self.redundancy not in LEG_NAMES or isinstance(self.redundancy, bool):
            raise ConfigError("redundancy", self.redundancy, "1 or 2 connections per feed")


class Feed:
    """Runs one connection's market data into its rings; see the module doc."""

    def __init__(
        self,
        config: FeedConfig,
        on_event: Callable[[Event], None] | None = None,
        on_universe: Callable[[list[tuple[InstrumentState, str]]], None] | None = None,
    ):
        self.config = config
        count = config.redundancy
        self.sessions = [DeribitSession(_leg_session(config.session, leg, count)) for leg in range(count)]
        self.session = self.sessions[0]
        self.channels = ChannelMap(config.channels, authenticated=self.session.has_credentials)
        ids = config.ids
        routes = [
            replace(route, instrument_id=ids.get(route.instrument, 0))
            for route in self.channels.routes(config.rings).values()
        ]
        routes += [self.channels.route(ring, name, iid) for ring, name, iid in config.members]
        self.adapter = DeribitAdapter(routes, crossed=config.crossed, ids=ids, indexes=config.indexes)
        self.adapter.watch(config.watch)
        self.routes = self.adapter.routes
        self.on_universe = on_universe
        self._adapter_feed = self.adapter.feed
        self._requests = self.adapter.requests  # non-empty: resubscriptions to send
        self.legs: Legs | None = None
        if count == 1:
            hooks = Hooks(
                on_connected=self.session.on_connected,
                on_disconnected=self._on_disconnected,
                subscribe_method=subscribe_method,
                unsubscribe_method=unsubscribe_method,
            )
            self.clients = [
                Client(config.client, on_notification=self._on_notification, on_event=on_event, hooks=hooks)
            ]
        else:
            self.legs = Legs(self.adapter, count, self._publish)
            self.clients = [self._leg_client(leg, on_event) for leg in range(count)]
        self.client = self.clients[0]
        for session, client in zip(self.sessions, self.clients, strict=True):
            session.bind(client)
        self._writers: dict[str, RingWriter] = {}
        self._resync_wake = asyncio.Event()
        self._resync_task: asyncio.Task[None] | None = None
        self._audit_task: asyncio.Task[None] | None = None
        self._tick_task: asyncio.Task[None] | None = None
        self.audits_sent = 0
        self.audits_deferred: Counter[str] = Counter()  # why an audit waited for its next chance
        self._resyncing: list[dict[str, str]] = [{} for _ in range(count)]  # per leg: channel -> reason
        self._joining: list[set[str]] = [
            set() for _ in range(count)
        ]  # per leg: added channels, until subscribed
        self._books_changed = asyncio.Event()  # book channels came or went: the audit schedule is redone
        self.resubscribed = 0
        self.publish_errors = 0
        self.refused: dict[str, str] = {}

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the rings, connect (logging in first if credentials are set) and subscribe."""
        if self._writers:
            raise UsageError("Feed.start() called twice; stop() it first")
        self._open_rings()
        channels = self.adapter.channels + self.adapter.watched
        try:
            await asyncio.gather(*(client.connect() for client in self.clients))
            results = await asyncio.gather(*(client.subscribe(channels) for client in self.clients))
        except BaseException:
            await self._shutdown()
            raise
        for result in results:
            self.refused.update(result.refused)
            if result.refused:
                log.error("the exchange refused channels: %s", result.refused)
        self._resync_task = asyncio.create_task(self._resync_loop(), name="feed-resync")
        if self.config.audit_interval > 0:
            self._audit_task = asyncio.create_task(self._audit_loop(), name="feed-audit")
        if self.legs is not None:
            self._tick_task = asyncio.create_task(self._tick_loop(self.legs), name="feed-legs")

    async def stop(self, timeout: float = 5.0) -> None:
        """Close the connection (final GAP records go out), then the ring writers."""
        await self._shutdown(timeout)

    async def __aenter__(self) -> Feed:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _open_rings(self, rings: Iterable[tuple[str, str]] | None = None) -> None:
        """Writers for (ring, record type) pairs (default: every ring of the routes) not open yet."""
        config = self.config
        wanted = dict(rings if rings is not None else ((r.ring, r.record_type) for r in self.routes.values()))
        opened: list[str] = []
        try:
            for ring, record_type in wanted.items():
                if ring in self._writers:
                    continue
                if config.attach_rings:
                    writer = RingWriter.attach(ring, record_type, instance=config.instance)
                    self._writers[ring] = writer
                    opened.append(ring)
                    self._take_over(writer)
                else:
                    self._writers[ring] = RingWriter.create(
                        ring, record_type, config.ring_capacity, instance=config.instance
                    )
                    opened.append(ring)
        except BaseException:
            for ring in opened:
                self._writers.pop(ring).close()
            raise

    def _take_over(self, writer: RingWriter) -> None:
        """Pick up where the ring's previous writer stopped (it may have died without a last word):
        a ring it left looking live is marked GAP at once (`feeder.ring.marking`, as the supervisor
        does); trade_seq continuity carries over from each instrument's last real trade (not a marker)."""
        mark_gap(writer)
        if writer.record_type != "trade":
            return
        trades = [r for r in self.routes.values() if r.ring == writer.name]
        if is_chain(writer.name):
            last = last_trades(writer.name, self.config.instance)
            for route in trades:
                if route.instrument_id in last:
                    self.adapter.continue_trades(route.channel, last[route.instrument_id])
        elif trades:
            record = last_content(writer.name, self.config.instance)
            if record is not None:
                self.adapter.continue_trades(trades[0].channel, int(record["trade_seq"]))

    # --- at run time -----------------------------------------------------------------------------

    def add(
        self,
        members: Iterable[Member],
        ids: Mapping[str, int] | None = None,
        indexes: Mapping[str, str] | None = None,
        watch: Iterable[str] = (),
    ) -> list[str]:
        """Serve more instruments (and market channels): writers opened now, channels subscribed in the
        background until they are; returns the new channels."""
        self.adapter.ids.update(ids or {})
        self.adapter.indexes.update(indexes or {})
        routes = [self.channels.route(ring, name, iid) for ring, name, iid in members]
        self._open_rings((r.ring, r.record_type) for r in routes)
        channels = self.adapter.add(routes) + self.adapter.watch(watch)
        for joining in self._joining:
            joining.update(channels)
        self._resync_wake.set()
        self._books_changed.set()
        return channels

    async def remove(self, instruments: Iterable[str]) -> list[str]:
        """Stop serving instruments (they ended): their FINAL records go out at once, their channels are
        unsubscribed; returns the rings whose writers this feed closed (nothing feeds them now)."""
        emitted, channels = self.adapter.remove(list(instruments), time.time_ns())
        self._publish(emitted)
        self._books_changed.set()
        for channel in channels:
            for joining, resyncing in zip(self._joining, self._resyncing, strict=True):
                joining.discard(channel)
                resyncing.pop(channel, None)
        if self.legs is not None:
            self.legs.forget(channels)
        used = {route.ring for route in self.adapter.routes.values()}
        closed = [ring for ring in self._writers if ring not in used]
        for ring in closed:
            self._writers.pop(ring).close()
        if channels:
            for client in self.clients:
                try:
                    await client.unsubscribe(channels)
                except FeederError as exc:  # the exchange may keep sending them: the adapter drops them
                    log.info("unsubscribe %d channels of ended instruments failed: %s", len(channels), exc)
        return closed

    async def _shutdown(self, timeout: float = 5.0) -> None:
        tasks = [t for t in (self._resync_task, self._audit_task, self._tick_task) if t is not None]
        self._resync_task = self._audit_task = self._tick_task = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            await asyncio.gather(*(client.close(timeout) for client in self.clients))
            for session in self.sessions:
                await session.close()
        finally:
            self._close_rings()

    def _close_rings(self) -> None:
        writers, self._writers = self._writers, {}
        for writer in writers.values():
            writer.close()

    # --- the receive path ------------------------------------------------------------------------

    def _on_notification(self, msg: dict[str, Any], recv_ns: int) -> None:
        """The client's handler for every market-data message: adapter, then publish, in one frame."""
        for ring, records in self._adapter_feed(msg, recv_ns):
            try:
                if len(records) == 1:
                    self._writers[ring].publish(records)
                else:
                    self._writers[ring].publish_batch(records)
            except (FeederError, KeyError) as exc:
                self._publish_failed(ring, exc)
        if self._requests:
            self._resync_wake.set()
        adapter = self.adapter
        if adapter.has_events:
            events = adapter.take_events()
            if self.on_universe is not None:
                self.on_universe(events)

    def _leg_client(self, leg: int, on_event: Callable[[Event], None] | None) -> Client:
        """Leg `leg`'s connection: its copies go through the arbiter; its events name it."""
        legs, session, after = self.legs, self.sessions[leg], self._after_notification
        assert legs is not None
        feed_leg = legs.feed
        name = LEG_NAMES[self.config.redundancy][leg]

        def on_notification(msg: dict[str, Any], recv_ns: int) -> None:
            feed_leg(leg, msg, recv_ns)
            after()

        async def on_connected(setup: Setup) -> None:
            legs.connected(leg)
            await session.on_connected(setup)

        def on_disconnected() -> None:
            legs.down(leg, time.time_ns())
            session.on_disconnected()
            self._resync_wake.set()

        def on_leg_event(event: Event) -> None:
            if on_event is not None:
                on_event(replace(event, data={**event.data, "leg": name}))

        hooks = Hooks(
            on_connected=on_connected,
            on_disconnected=on_disconnected,
            subscribe_method=subscribe_method,
            unsubscribe_method=unsubscribe_method,
        )
        config = self.config.client
        if config.record_to and leg:
            stem, dot, ext = str(config.record_to).rpartition(".")
            config = replace(config, record_to=f"{stem}-{name}.{ext}" if dot else f"{ext}-{name}")
        return Client(config, on_notification=on_notification, on_event=on_leg_event, hooks=hooks)

    def _after_notification(self) -> None:
        """What follows a leg's copy: resubscriptions to send, universe events to pass on."""
        legs = self.legs
        if legs is not None and (legs.requests or self.adapter.requests):
            self._resync_wake.set()
        adapter = self.adapter
        if adapter.has_events:
            events = adapter.take_events()
            if self.on_universe is not None:
                self.on_universe(events)

    async def _tick_loop(self, legs: Legs) -> None:
        """Held copies whose hole nobody filled break their book even while nothing else arrives."""
        while True:
            await asyncio.sleep(TICK_S)
            legs.tick(time.time_ns())
            if legs.requests or self.adapter.requests:
                self._resync_wake.set()

    def _publish(self, emitted: list[Emit]) -> None:
        writers = self._writers
        for ring, records in emitted:
            try:
                if len(records) == 1:
                    writers[ring].publish(records)
                else:
                    writers[ring].publish_batch(records)
            except (FeederError, KeyError) as exc:
                self._publish_failed(ring, exc)

    def _publish_failed(self, ring: str, exc: Exception) -> None:
        """A closed or missing writer: counted (and logged once), never a crash of the receive path."""
        self.publish_errors += 1
        if self.publish_errors == 1:
            log.error("cannot publish to ring %s: %r", ring, exc)

    def _on_disconnected(self) -> None:
        self._publish(self.adapter.disconnected(time.time_ns()))
        self.session.on_disconnected()

    # --- resubscriptions -------------------------------------------------------------------------

    async def _resync_loop(self) -> None:
        while True:
            await self._resync_wake.wait()
            self._resync_wake.clear()
            if self.legs is None:
                for request in self.adapter.take_requests():
                    self._resyncing[0].setdefault(request.channel, request.reason)
            else:
                for leg, request in self.legs.take_requests():
                    self._resyncing[leg].setdefault(request.channel, request.reason)
            await asyncio.gather(*(self._resync_leg(leg) for leg in range(len(self.clients))))
            if any(self._resyncing) or any(self._joining):
                await asyncio.sleep(self.config.resync_retry_s)
                self._resync_wake.set()

    async def _resync_leg(self, leg: int) -> None:
        resyncing, joining, client = self._resyncing[leg], self._joining[leg], self.clients[leg]
        if resyncing:
            for channel in await self._resubscribe(client, list(resyncing)):
                resyncing.pop(channel, None)
        if joining:
            for channel in await self._join(client, sorted(joining)):
                joining.discard(channel)

    async def _resubscribe(self, client: Client, channels: list[str]) -> list[str]:
        """Unsubscribe then subscribe (one request each; the exchange then sends fresh snapshots);
        returns the channels subscribed again."""
        try:
            await client.unsubscribe(channels)
        except FeederError as exc:  # whatever happened, the subscribe below decides
            log.info("resync %s: unsubscribe failed (%s)", channels, exc)
        try:
            result = await client.subscribe(channels)
        except FeederError as exc:
            log.warning("resync %s: subscribe failed (%s); retrying", channels, exc)
            return []
        if result.refused:
            log.warning("resync: subscriptions refused (%s); retrying", result.refused)
        self.resubscribed += len(result.confirmed)
        return result.confirmed

    async def _join(self, client: Client, channels: list[str]) -> list[str]:
        """Subscribe channels added at run time; returns those subscribed."""
        try:
            result = await client.subscribe(channels)
        except FeederError as exc:
            log.info("subscribe %d new channels failed (%s); retrying", len(channels), exc)
            return []
        if result.refused:
            log.warning("the exchange refused new channels: %s", result.refused)
            self.refused.update(result.refused)
            return [*result.confirmed, *result.refused]  # refused: retrying would not help
        return result.confirmed

    # --- the live audit --------------------------------------------------------------------------

    async def _audit_loop(self) -> None:
        schedule: AuditSchedule | None = None
        self._books_changed.set()
        while True:
            if self._books_changed.is_set():
                self._books_changed.clear()
                books = self.adapter.audit_channels
                schedule = (
                    AuditSchedule(books, self.config.audit_interval, time.monotonic()) if books else None
                )
            if schedule is None:
                await self._books_changed.wait()
                continue
            channel, at = schedule.head()
            with contextlib.suppress(TimeoutError):  # a change of books wakes it early
                await asyncio.wait_for(self._books_changed.wait(), max(0.0, at - time.monotonic()))
            if self._books_changed.is_set() or channel not in self.adapter.routes:
                continue
            now = time.monotonic()
            blocked = self._audit_blocked()
            if blocked:
                self.audits_deferred[blocked] += 1
                schedule.postpone(now + min(AUDIT_RETRY_S, schedule.step))
                continue
            schedule.advance(now)
            if not self.adapter.auditable(channel):
                self.audits_deferred["book not live"] += 1
                continue
            try:
                await self._audit(channel)
            except Exception:  # a bug must not end the audits silently, nor the worker
                log.exception("audit of %s failed", channel)

    def _audit_blocked(self) -> str | None:
        """Why no audit may go now (None: it may): the lowest priority on this connection."""
        if self.client.state is not ConnState.CONNECTED:
            return "not connected"
        if any(self._resyncing) or self.adapter.requests:
            return "resync in progress"
        if not spare_budget(self.client.metrics().get("limiter")):
            return "rate-limit budget"
        return None

    async def _audit(self, channel: str) -> None:
        route = self.adapter.routes[channel]
        self.audits_sent += 1
        self.adapter.audit_started(channel)
        try:
            result = await self.client.request("public/get_order_book", DeribitAdapter.audit_params(route))
        except FeederError as exc:
            self.adapter.audit_unverifiable(channel, f"request failed: {type(exc).__name__}")
            return
        self._publish(self.adapter.audit(channel, result, time.time_ns()))
        if self.adapter.requests:
            if self.legs is not None:
                self.legs.take_broken()
            self._resync_wake.set()

    # --- what is going on ------------------------------------------------------------------------

    def metrics(self) -> dict[str, Any]:
        """Adapter counters, client and session state, and each ring's write sequence and epoch."""
        metrics = {
            "adapter": self.adapter.metrics(),
            "client": self.client.metrics(),
            "session": self.session.metrics(),
            "rings": {
                ring: {"write_seq": writer.write_seq, "epoch": writer.epoch}
                for ring, writer in self._writers.items()
            },
            "resyncing": {channel: r for resyncing in self._resyncing for channel, r in resyncing.items()},
            "audits": {"sent": self.audits_sent, "deferred": dict(self.audits_deferred)},
            "resubscribed": self.resubscribed,
            "publish_errors": self.publish_errors,
            "refused_channels": dict(self.refused),
        }
        if self.legs is not None:
            names = LEG_NAMES[self.config.redundancy]
            metrics["legs"] = [
                {**figures, "name": names[leg], "client": self.clients[leg].metrics(),
                 "resyncing": dict(self._resyncing[leg])}
                for leg, figures in enumerate(self.legs.metrics())
            ]  # fmt: skip
        return metrics


def _leg_session(config: SessionConfig, leg: int, count: int) -> SessionConfig:
    """Leg `leg`'s session: its name in public/hello; only the first leg trades (cancel-on-disconnect)."""
    if count == 1:
        return config
    name = None if config.client_name is None else f"{config.client_name}-{LEG_NAMES[count][leg]}"
    cod = config.cancel_on_disconnect if leg == 0 else None
    return replace(config, client_name=name, cancel_on_disconnect=cod)
