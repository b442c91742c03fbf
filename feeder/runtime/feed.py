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
- Rings are created (this process owns them) or, with `attach_rings`, attached as their writer (a
  supervisor owns them and they outlive this feed). Attaching takes over from the previous writer,
  which may have died mid-stream: a book ring whose last record is not GAP gets a GAP record at once,
  and a trades ring's last trade_seq seeds the gap check. `stop()` closes the client first, so the
  final GAP records are published, then the writers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from feeder.client import Client, ClientConfig, Event, Hooks
from feeder.errors import ConfigError, FeederError, UsageError
from feeder.exchanges.deribit.adapter import DeribitAdapter, Emit
from feeder.exchanges.deribit.channels import ChannelConfig, ChannelMap, Route
from feeder.exchanges.deribit.session import (
    DeribitSession,
    SessionConfig,
    subscribe_method,
    unsubscribe_method,
)
from feeder.ring import RingWriter
from feeder.ring.marking import last_content, mark_gap

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeedConfig:
    """What one feed connects to, which rings it fills, and how."""

    client: ClientConfig
    rings: tuple[str, ...]
    channels: ChannelConfig = field(default_factory=ChannelConfig)
    session: SessionConfig = field(default_factory=SessionConfig)
    ring_capacity: int = 1 << 16
    attach_rings: bool = False  # True: the rings exist (a supervisor owns them); become their writer
    instance: str | None = None  # ring namespace; None: $FEEDER_INSTANCE or "default"
    resync_retry_s: float = 1.0  # wait between attempts when a resubscription fails

    def __post_init__(self) -> None:
        if not isinstance(self.client, ClientConfig):
            raise ConfigError("client", type(self.client).__name__, "a feeder.client.ClientConfig")
        if isinstance(self.rings, str) or not self.rings:
            raise ConfigError("rings", self.rings, "a non-empty tuple of ring names such as ('book.BTC',)")
        if self.resync_retry_s <= 0:
            raise ConfigError("resync_retry_s", self.resync_retry_s, "a number of seconds > 0")


class Feed:
    """Runs one connection's market data into its rings; see the module doc."""

    def __init__(self, config: FeedConfig, on_event: Callable[[Event], None] | None = None):
        self.config = config
        self.session = DeribitSession(config.session)
        self.channels = ChannelMap(config.channels, authenticated=self.session.has_credentials)
        self.routes = self.channels.routes(config.rings)
        self.adapter = DeribitAdapter(self.routes.values())
        hooks = Hooks(
            on_connected=self.session.on_connected,
            on_disconnected=self._on_disconnected,
            subscribe_method=subscribe_method,
            unsubscribe_method=unsubscribe_method,
        )
        self.client = Client(
            config.client, on_notification=self._on_notification, on_event=on_event, hooks=hooks
        )
        self.session.bind(self.client)
        self._writers: dict[str, RingWriter] = {}
        self._resync_wake = asyncio.Event()
        self._resync_task: asyncio.Task | None = None
        self._resyncing: dict[str, str] = {}  # channel -> reason, until subscribed again
        self.resubscribed = 0
        self.publish_errors = 0
        self.refused: dict[str, str] = {}

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the rings, connect (logging in first if credentials are set) and subscribe."""
        if self._writers:
            raise UsageError("Feed.start() called twice; stop() it first")
        self._open_rings()
        try:
            await self.client.connect()
            result = await self.client.subscribe(self.adapter.channels)
        except BaseException:
            await self._shutdown()
            raise
        self.refused.update(result.refused)
        if result.refused:
            log.error("the exchange refused channels: %s", result.refused)
        self._resync_task = asyncio.create_task(self._resync_loop(), name="feed-resync")

    async def stop(self, timeout: float = 5.0) -> None:
        """Close the connection (final GAP records go out), then the ring writers."""
        await self._shutdown(timeout)

    async def __aenter__(self) -> Feed:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _open_rings(self) -> None:
        config = self.config
        try:
            for route in self.routes.values():
                if config.attach_rings:
                    writer = RingWriter.attach(route.ring, route.record_type, instance=config.instance)
                    self._writers[route.ring] = writer
                    self._take_over(route, writer)
                else:
                    self._writers[route.ring] = RingWriter.create(
                        route.ring, route.record_type, config.ring_capacity, instance=config.instance
                    )
        except BaseException:
            self._close_rings()
            raise

    def _take_over(self, route: Route, writer: RingWriter) -> None:
        """Pick up where the ring's previous writer stopped (it may have died without a last word):
        a ring it left looking live is marked GAP at once (`feeder.ring.marking`, as the supervisor
        does); trade_seq continuity carries over from the last real trade (not a marker)."""
        mark_gap(writer)
        if route.record_type == "trade":
            last = last_content(route.ring, self.config.instance)
            if last is not None:
                self.adapter.continue_trades(route.channel, int(last["trade_seq"]))

    async def _shutdown(self, timeout: float = 5.0) -> None:
        task, self._resync_task = self._resync_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        try:
            await self.client.close(timeout)
            await self.session.close()
        finally:
            self._close_rings()

    def _close_rings(self) -> None:
        writers, self._writers = self._writers, {}
        for writer in writers.values():
            writer.close()

    # --- the receive path ------------------------------------------------------------------------

    def _on_notification(self, msg: dict, recv_ns: int) -> None:
        self._publish(self.adapter.feed(msg, recv_ns))
        if self.adapter.has_requests:
            self._resync_wake.set()

    def _publish(self, emitted: list[Emit]) -> None:
        writers = self._writers
        for ring, records in emitted:
            try:
                if len(records) == 1:
                    writers[ring].publish(records)
                else:
                    writers[ring].publish_batch(records)
            except (FeederError, KeyError) as exc:  # a closed or missing writer: count, never crash the loop
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
            for request in self.adapter.take_requests():
                self._resyncing.setdefault(request.channel, request.reason)
            if self._resyncing:
                for channel in await self._resubscribe(list(self._resyncing)):
                    del self._resyncing[channel]
            if self._resyncing:
                await asyncio.sleep(self.config.resync_retry_s)
                self._resync_wake.set()

    async def _resubscribe(self, channels: list[str]) -> list[str]:
        """Unsubscribe then subscribe (one request each; the exchange then sends fresh snapshots);
        returns the channels subscribed again."""
        try:
            await self.client.unsubscribe(channels)
        except FeederError as exc:  # whatever happened, the subscribe below decides
            log.info("resync %s: unsubscribe failed (%s)", channels, exc)
        try:
            result = await self.client.subscribe(channels)
        except FeederError as exc:
            log.warning("resync %s: subscribe failed (%s); retrying", channels, exc)
            return []
        if result.refused:
            log.warning("resync: subscriptions refused (%s); retrying", result.refused)
        self.resubscribed += len(result.confirmed)
        return result.confirmed

    # --- what is going on ------------------------------------------------------------------------

    def metrics(self) -> dict[str, Any]:
        """Adapter counters, client and session state, and each ring's write sequence and epoch."""
        return {
            "adapter": self.adapter.metrics(),
            "client": self.client.metrics(),
            "session": self.session.metrics(),
            "rings": {
                ring: {"write_seq": writer.write_seq, "epoch": writer.epoch}
                for ring, writer in self._writers.items()
            },
            "resyncing": dict(self._resyncing),
            "resubscribed": self.resubscribed,
            "publish_errors": self.publish_errors,
            "refused_channels": dict(self.refused),
        }
