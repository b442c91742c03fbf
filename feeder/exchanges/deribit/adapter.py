"""The Deribit market-data core: notifications in, ring records and requests out. No I/O.

`DeribitAdapter.feed(msg, recv_ns)` takes a decoded `subscription` notification and returns the records
to publish as `(ring name, records)` pairs; requests it wants sent (a resubscription after a gap) are
collected as data and taken with `take_requests()`. Rules it keeps:
- It never raises on exchange data. A bad message is a counted rejection (by field); if it could have
  changed a book, that book is marked GAP and resynced.
- Books (`sync.py` holds the state machine): a snapshot (also a legacy one without `type`) is published
  SNAPSHOT-flagged; a change is applied only when its `prev_change_id` is the last `change_id`;
  duplicates and stale messages (change_id <= last) are dropped and counted; a gap, a bad message or an
  action the book contradicts (`new` on an existing level, `change`/`delete` of a missing one)
  publishes one GAP record at once and asks for an unsubscribe + subscribe of that channel only. The
  GAP record carries the last good top-N and change_id (it equals the exchange's book at that
  change_id); nothing more is published for that book until the new snapshot. Crossed books are
  published with CROSSED and counted.
- Trades: one record per trade; a trade_seq jump flags that record GAP and is counted; repeated
  trade_seq are dropped and counted. Tickers: one record per notification.
- The returned list and the record arrays in it are reused: publish them before the next call.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from feeder.core.book import BookSide, L2Book
from feeder.errors import BadMessage, UsageError
from feeder.exchanges.deribit.channels import Route
from feeder.exchanges.deribit.parse import (
    BookUpdate,
    Ticker,
    Trade,
    parse_book,
    parse_grouped_book,
    parse_ticker,
    parse_trade,
    trades_list,
)
from feeder.exchanges.deribit.records import packer, scratch
from feeder.exchanges.deribit.sync import BookSync, SyncEvent, next_state
from feeder.ring.flags import CROSSED, GAP, SNAPSHOT

log = logging.getLogger(__name__)

Emit = tuple[str, np.ndarray]
MS = 1_000_000  # Deribit timestamps are ms; records hold ns

_COMMON = ("flags", "ts_exchange", "ts_recv")
_BOOK_OFF, _pack_book = packer("book", (*_COMMON, "change_id", "prev_change_id", "bid_count", "ask_count"))
_TRADE_OFF, _pack_trade = packer("trade", _COMMON + Trade._fields[1:])
_TICKER_OFF, _pack_ticker = packer("ticker", _COMMON + Ticker._fields[1:])
_TRADE_SIZE = scratch("trade").itemsize


@dataclass(frozen=True)
class Resubscribe:
    """Ask the connection to unsubscribe and resubscribe one channel (for a fresh snapshot)."""

    channel: str
    reason: str


class AdapterStats:
    """Counters over all channels of one adapter."""

    __slots__ = (
        "book_changes",
        "crossed",
        "duplicates",
        "gaps",
        "inconsistent",
        "notifications",
        "records",
        "rejected",
        "resyncs",
        "skipped",
        "snapshots",
        "tickers",
        "trade_duplicates",
        "trade_gaps",
        "trades",
        "trades_missed",
        "unknown_channel",
    )

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


class _Feed:
    """Shared parts of a per-channel handler."""

    def __init__(self, adapter: DeribitAdapter, route: Route):
        self.route = route
        self.instrument = route.instrument
        self.stats = adapter.stats
        self.out = adapter._out
        self.request = adapter._requests.append
        self._reject = adapter._reject

    def reject(self, exc: BadMessage) -> None:
        self._reject(self.route, exc)


class _BookFeed(_Feed):
    """One book channel: sync state, the book, and its scratch record."""

    def __init__(self, adapter: DeribitAdapter, route: Route):
        super().__init__(adapter, route)
        self.state = BookSync.AWAITING_SNAPSHOT
        self.book = L2Book()
        self.record = scratch("book")
        self.buf = memoryview(self.record.view(np.uint8))
        self.emit: Emit = (route.ring, self.record)
        self.parse = parse_grouped_book if route.grouped else parse_book
        self.change_id = self.prev_change_id = self.ts_exchange = 0
        self.counts = (0, 0)
        self.gaps = self.resyncs = self.snapshots = 0

    def __call__(self, data: Any, recv_ns: int) -> None:
        try:
            update = self.parse(data, self.instrument)
        except BadMessage as exc:
            self.rejected(data, exc, recv_ns)
            return
        if self.state is BookSync.LIVE:
            self.live(update, recv_ns)
        elif update.snapshot:
            self.snapshot(update, recv_ns, SNAPSHOT)
        else:
            self.stats.skipped += 1

    def live(self, update: BookUpdate, recv_ns: int) -> None:
        """A valid message on a live book: drop it, apply it, or find the book broken."""
        stats = self.stats
        if update.change_id <= self.change_id:
            stats.duplicates += 1
        elif update.snapshot:
            self.snapshot(update, recv_ns, 0 if self.route.grouped else SNAPSHOT)
        elif update.prev_change_id != self.change_id:
            stats.gaps += 1
            self.gaps += 1
            self.broken("gap", recv_ns)
        elif not self.apply(update.bids, self.book.bids) or not self.apply(update.asks, self.book.asks):
            stats.inconsistent += 1
            self.broken("inconsistent action", recv_ns)
        else:
            stats.book_changes += 1
            self.publish(update.change_id, update.prev_change_id, update.timestamp_ms * MS, recv_ns, 0)

    def rejected(self, data: Any, exc: BadMessage, recv_ns: int) -> None:
        """A bad message: counted; the book is broken if it could have changed it."""
        self.reject(exc)
        if self.state is BookSync.LIVE or self.route.grouped or _may_be_snapshot(data):
            self.broken("bad message", recv_ns)

    @staticmethod
    def apply(entries: list, side: BookSide) -> bool:
        """Apply validated [action, price, amount] entries; False when one contradicts the book."""
        for action, price, amount in entries:
            if action == "delete":
                if not side.remove(price):
                    return False
            elif side.set(price, amount) != (action == "change"):
                return False
        return True

    def snapshot(self, update: BookUpdate, recv_ns: int, flags: int) -> None:
        self.book.load(update.bids, update.asks)
        self.state = next_state(self.state, SyncEvent.SNAPSHOT)
        self.stats.snapshots += 1
        self.snapshots += 1
        self.publish(update.change_id, 0, update.timestamp_ms * MS, recv_ns, flags)

    def publish(self, change_id: int, prev: int, ts_exchange: int, recv_ns: int, flags: int) -> None:
        self.change_id, self.prev_change_id, self.ts_exchange = change_id, prev, ts_exchange
        bid_count, ask_count = self.counts = self.book.write_top(self.buf)
        if bid_count and ask_count and self.book.crossed():
            flags |= CROSSED
            self.stats.crossed += 1
        _pack_book(self.buf, _BOOK_OFF, flags, ts_exchange, recv_ns, change_id, prev, bid_count, ask_count)
        self.stats.records += 1
        self.out.append(self.emit)

    def broken(self, reason: str, recv_ns: int) -> None:
        """Stop trusting the book: GAP record (once), then ask for a fresh snapshot."""
        before = self.state
        self.state = next_state(before, SyncEvent.BROKEN)
        self.stats.resyncs += 1
        self.resyncs += 1
        self.request(Resubscribe(self.route.channel, reason))
        if before is not BookSync.GAP:
            self.publish_gap(recv_ns)

    def disconnected(self, now_ns: int) -> None:
        before = self.state
        self.state = next_state(before, SyncEvent.DISCONNECTED)
        if before is BookSync.LIVE:
            self.publish_gap(now_ns)

    def publish_gap(self, recv_ns: int) -> None:
        """Re-publish the last good top-N (or an empty book) flagged GAP."""
        bid_count, ask_count = self.counts
        _pack_book(
            self.buf, _BOOK_OFF, GAP, self.ts_exchange, recv_ns, self.change_id, self.prev_change_id,
            bid_count, ask_count,
        )  # fmt: skip
        self.stats.records += 1
        self.out.append(self.emit)


def _may_be_snapshot(data: Any) -> bool:
    """Whether a rejected book payload might have been the snapshot we wait for."""
    if type(data) is not dict:
        return True
    return data.get("type") == "snapshot" or ("type" not in data and not data.get("prev_change_id"))


class _TradeFeed(_Feed):
    """One trades channel: trade_seq continuity and a growable batch of trade records."""

    def __init__(self, adapter: DeribitAdapter, route: Route):
        super().__init__(adapter, route)
        self.records = scratch("trade", 16)
        self.last_seq = -1
        self.gaps = self.missed = 0

    def __call__(self, data: Any, recv_ns: int) -> None:
        try:
            items = trades_list(data)
        except BadMessage as exc:
            self.reject(exc)
            return
        if len(items) > len(self.records):
            self.records = scratch("trade", len(items))
        buf = memoryview(self.records.view(np.uint8))
        stats, count = self.stats, 0
        for item in items:
            try:
                trade = parse_trade(item, self.instrument)
            except BadMessage as exc:
                self.reject(exc)
                continue
            flags, seq, last = 0, trade.trade_seq, self.last_seq
            if last >= 0:
                if seq <= last:
                    stats.trade_duplicates += 1
                    continue
                if seq != last + 1:
                    flags = GAP
                    stats.trade_gaps += 1
                    stats.trades_missed += seq - last - 1
                    self.gaps += 1
                    self.missed += seq - last - 1
            self.last_seq = seq
            _pack_trade(buf, count * _TRADE_SIZE + _TRADE_OFF, flags, trade[0] * MS, recv_ns, *trade[1:])
            count += 1
        if count:
            stats.trades += count
            stats.records += count
            self.out.append((self.route.ring, self.records[:count]))


class _TickerFeed(_Feed):
    """One ticker channel."""

    def __init__(self, adapter: DeribitAdapter, route: Route):
        super().__init__(adapter, route)
        self.record = scratch("ticker")
        self.buf = memoryview(self.record.view(np.uint8))
        self.emit: Emit = (route.ring, self.record)

    def __call__(self, data: Any, recv_ns: int) -> None:
        try:
            ticker = parse_ticker(data, self.instrument)
        except BadMessage as exc:
            self.reject(exc)
            return
        _pack_ticker(self.buf, _TICKER_OFF, 0, ticker[0] * MS, recv_ns, *ticker[1:])
        self.stats.tickers += 1
        self.stats.records += 1
        self.out.append(self.emit)


_FEEDS = {"book": _BookFeed, "trades": _TradeFeed, "ticker": _TickerFeed}


class DeribitAdapter:
    """Market-data protocol core for the channels of one connection."""

    def __init__(self, routes: Iterable[Route]):
        self.stats = AdapterStats()
        self.rejections: Counter[str] = Counter()  # by field
        self.last_rejection = ""
        self._out: list[Emit] = []
        self._requests: list[Resubscribe] = []
        self._feeds: dict[str, Any] = {}
        self.routes: dict[str, Route] = {}
        for route in routes:
            self.routes[route.channel] = route
            self._feeds[route.channel] = _FEEDS[route.stream](self, route)

    @property
    def channels(self) -> list[str]:
        """Every channel to subscribe."""
        return list(self.routes)

    def feed(self, msg: Any, recv_ns: int) -> list[Emit]:
        """Process one `subscription` notification; returns (ring, records) to publish, in order."""
        out = self._out
        out.clear()
        self.stats.notifications += 1
        try:
            params = msg["params"]
            feed = self._feeds.get(params["channel"])
            data = params["data"]
        except (KeyError, TypeError, IndexError):
            self._reject(None, BadMessage("notification", msg, "{'params': {'channel': str, 'data': ...}}"))
            return out
        if feed is None:
            self.stats.unknown_channel += 1
            return out
        feed(data, recv_ns)
        return out

    def disconnected(self, now_ns: int) -> list[Emit]:
        """The connection dropped: every live book gets a GAP record; pending resyncs are moot."""
        out = self._out
        out.clear()
        self._requests.clear()
        for feed in self._feeds.values():
            if isinstance(feed, _BookFeed):
                feed.disconnected(now_ns)
        return out

    def continue_trades(self, channel: str, last_trade_seq: int) -> None:
        """Carry trade_seq continuity over from a previous writer of the ring (a restarted worker)."""
        feed = self._feeds[channel]
        if not isinstance(feed, _TradeFeed):
            raise UsageError(f"{channel} is not a trades channel")
        feed.last_seq = last_trade_seq

    def take_requests(self) -> list[Resubscribe]:
        """Requests to send, oldest first (each channel at most once)."""
        seen: dict[str, Resubscribe] = {}
        for request in self._requests:
            seen.setdefault(request.channel, request)
        self._requests.clear()
        return list(seen.values())

    @property
    def has_requests(self) -> bool:
        return bool(self._requests)

    def book_state(self, channel: str) -> BookSync:
        """Sync state of a book channel."""
        return self._feeds[channel].state

    def metrics(self) -> dict[str, Any]:
        """Counters, rejections by field, and per book channel its state, gaps and resyncs."""
        books = {
            channel: {
                "ring": feed.route.ring,
                "state": feed.state.value,
                "change_id": feed.change_id,
                "gaps": feed.gaps,
                "resyncs": feed.resyncs,
                "snapshots": feed.snapshots,
            }
            for channel, feed in self._feeds.items()
            if isinstance(feed, _BookFeed)
        }
        trades = {
            channel: {
                "ring": feed.route.ring,
                "last_seq": feed.last_seq,
                "gaps": feed.gaps,
                "missed": feed.missed,
            }
            for channel, feed in self._feeds.items()
            if isinstance(feed, _TradeFeed)
        }
        return {
            **self.stats.as_dict(),
            "rejections": dict(self.rejections),
            "last_rejection": self.last_rejection,
            "books": books,
            "trades_channels": trades,
        }

    def _reject(self, route: Route | None, exc: BadMessage) -> None:
        self.stats.rejected += 1
        count = self.rejections[exc.field] = self.rejections[exc.field] + 1
        where = route.channel if route else "notification"
        self.last_rejection = f"{where}: {exc}"
        if _worth_logging(count):
            log.warning("rejected %s (%d so far for field %s)", self.last_rejection, count, exc.field)


def _worth_logging(count: int) -> bool:
    """1st, 10th, 100th ... occurrence: bad data is visible in logs without flooding them."""
    while count % 10 == 0:
        count //= 10
    return count == 1
