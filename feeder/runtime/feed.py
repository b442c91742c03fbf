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
- The live audit (`audit_interval` seconds per book, 0 = off) runs as a task of its own
  (`feeder.runtime.feedaudit`), at the lowest priority of the connection; a mismatch is published as
  GAP at once and the book resyncs like after a gap.
- Routes come from `rings` (one ring per instrument, the instrument named by the ring) and `members`
  ((ring, instrument, instrument_id): chain rings, or any ring with its id); `watch` adds the market's
  own channels (instrument.state.*, platform_state), whose listings and ends go to `on_universe`.
  `add()` and `remove()` change them at run time: new channels are subscribed (retried until they
  are), an instrument removed gets its FINAL records at once, its channels are unsubscribed and the
  writers of rings nothing feeds any more are closed.
- Rings are created (this process owns them) or, with `attach_rings`, attached as their writer (a
  supervisor owns them and they outlive this feed), taking over from a previous writer that may have
  died mid-stream (`feeder.runtime.feedrings`).
  `stop()` closes the client first, so the final GAP records are published, then the writers.
- `redundancy = 2`: two connections (legs, each a `Client` with its own heartbeat, backoff and login,
  named `<client_name>-a` / `-b` in public/hello) receive every channel, and every copy goes through
  `feeder.exchanges.deribit.legs.Legs` (the arbiter) before the one adapter; with 1 the receive path is
  the adapter's alone, unchanged. Orders, the live audit and `client`/`session` are leg a's (the second
  leg never enables cancel-on-disconnect: it never trades); resubscriptions and run-time channels go to
  each leg. Both legs' requests come out of the rate-limit budget of `ClientConfig.rate_limit`: shared by
  the account's every connection when it names a `shared_dir` (as workers do), else one budget per leg.
- `channel_figures()`: per channel its notifications and the receive time of the last one (and per leg,
  with redundancy: the channel's last time is the freshest leg's); the receive path pays two stores.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from feeder.client import Client, ClientConfig, Event, Hooks, Setup
from feeder.core.silence import Figures
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
from feeder.runtime.feedaudit import FeedAudit
from feeder.runtime.feedrings import FeedRings

log = logging.getLogger(__name__)

TICK_S = 0.01  # with redundancy: how often held copies are looked at while nothing arrives
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
        self.rings = FeedRings(self.adapter, config.attach_rings, config.ring_capacity, config.instance)
        self._writers = self.rings.writers
        self._resync_wake = asyncio.Event()
        self._resync_task: asyncio.Task[None] | None = None
        self._audit_task: asyncio.Task[None] | None = None
        self.audits = FeedAudit(self)
        self._tick_task: asyncio.Task[None] | None = None
        self._resyncing: list[dict[str, str]] = [{} for _ in range(count)]  # per leg: channel -> reason
        self._joining: list[set[str]] = [
            set() for _ in range(count)
        ]  # per leg: added channels, until subscribed
        self.resubscribed = 0
        self.publish_errors = 0
        self.refused: dict[str, str] = {}

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the rings, connect (logging in first if credentials are set) and subscribe."""
        if self._writers:
            raise UsageError("Feed.start() called twice; stop() it first")
        self.rings.open((r.ring, r.record_type) for r in self.routes.values())
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
            self._audit_task = asyncio.create_task(self.audits.run(), name="feed-audit")
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
        self.rings.open((r.ring, r.record_type) for r in routes)
        channels = self.adapter.add(routes) + self.adapter.watch(watch)
        for joining in self._joining:
            joining.update(channels)
        self._resync_wake.set()
        self.audits.books_changed.set()
        return channels

    async def remove(self, instruments: Iterable[str]) -> list[str]:
        """Stop serving instruments (they ended): their FINAL records go out at once, their channels are
        unsubscribed; returns the rings whose writers this feed closed (nothing feeds them now)."""
        emitted, channels = self.adapter.remove(list(instruments), time.time_ns())
        self._publish(emitted)
        self.audits.books_changed.set()
        for channel in channels:
            for joining, resyncing in zip(self._joining, self._resyncing, strict=True):
                joining.discard(channel)
                resyncing.pop(channel, None)
        if self.legs is not None:
            self.legs.forget(channels)
        used = {route.ring for route in self.adapter.routes.values()}
        closed = self.rings.close_unused(used)
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
            self.rings.close()

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

    def resyncing(self) -> bool:
        """Whether a resubscription of some leg is under way."""
        return any(self._resyncing)

    def judged(self, emitted: list[Emit]) -> None:
        """An audit's outcome: its records published; a failed one's resync sent (on every leg)."""
        self._publish(emitted)
        if self.adapter.requests:
            if self.legs is not None:
                self.legs.take_broken()
            self._resync_wake.set()

    # --- what is going on ------------------------------------------------------------------------

    def channel_figures(self) -> list[Figures]:
        """Per served channel: (channel, ring, notifications, receive ns of the last one or 0, per leg
        (copies, receive ns of the last) or None with one connection)."""
        figures = self.adapter.channel_figures()
        legs = self.legs
        if legs is None:
            return [(channel, ring, messages, last_ns, None) for channel, ring, messages, last_ns in figures]
        out: list[Figures] = []
        silent = ((0, 0),) * legs.count
        for channel, ring, messages, last_ns in figures:
            seen = legs.channel_figures(channel)
            if seen is None:
                out.append((channel, ring, messages, last_ns, silent))
            else:
                counts, lasts = seen  # as many as legs: zip needs no check
                out.append(
                    (channel, ring, messages, max(last_ns, *lasts), tuple(zip(counts, lasts, strict=False)))
                )
        return out

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
            "audits": self.audits.metrics(),
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
