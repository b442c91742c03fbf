"""Per-channel handlers of the Deribit adapter for event streams (trades, ticker), and their shared base.

Rules they keep (the adapter's module doc has the whole contract):
- Trades: one record per trade; a trade_seq jump flags that record GAP and is counted; repeated
  trade_seq are dropped and counted. Tickers: one record per notification.
- A disconnect gets a MARKER|GAP record (`feeder.ring.gaps`) on every event ring that published
  since its last marker: readers learn at once that the stream is interrupted, and no event is
  repeated (a reader summing trade amounts over non-MARKER records counts each trade once).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from feeder.errors import BadMessage
from feeder.exchanges.deribit.channels import Route
from feeder.exchanges.deribit.parse import Ticker, Trade, parse_ticker, parse_trade, trades_list
from feeder.exchanges.deribit.records import packer, scratch
from feeder.ring.flags import GAP
from feeder.ring.gaps import marker

if TYPE_CHECKING:
    from feeder.exchanges.deribit.adapter import DeribitAdapter

Emit = tuple[str, np.ndarray]
MS = 1_000_000  # Deribit timestamps are ms; records hold ns

COMMON = ("flags", "ts_exchange", "ts_recv")
_TRADE_OFF, _pack_trade = packer("trade", COMMON + Trade._fields[1:])
_TICKER_OFF, _pack_ticker = packer("ticker", COMMON + Ticker._fields[1:])
_TRADE_SIZE = scratch("trade").itemsize


@dataclass(frozen=True)
class Resubscribe:
    """Ask the connection to unsubscribe and resubscribe one channel (for a fresh snapshot)."""

    channel: str
    reason: str


class ChannelFeed:
    """Shared parts of a per-channel handler."""

    def __init__(self, adapter: DeribitAdapter, route: Route):
        self.route = route
        self.instrument = route.instrument
        self.stats = adapter.stats
        self.out = adapter._out
        self.request = adapter.requests.append
        self._reject = adapter._reject

    def reject(self, exc: BadMessage) -> None:
        self._reject(self.route, exc)

    def disconnected(self, now_ns: int) -> None:
        """The connection dropped (event streams: see EventFeed)."""


class EventFeed(ChannelFeed):
    """An event stream: a MARKER|GAP record on a disconnect if anything was published since the last."""

    record_type = ""

    def __init__(self, adapter: DeribitAdapter, route: Route):
        super().__init__(adapter, route)
        self.flowing = False  # published since the last marker

    def disconnected(self, now_ns: int) -> None:
        if self.flowing:
            self.flowing = False
            self.stats.markers += 1
            self.stats.records += 1
            self.out.append((self.route.ring, marker(scratch(self.record_type).dtype, now_ns)))


class TradeFeed(EventFeed):
    """One trades channel: trade_seq continuity and a growable batch of trade records."""

    record_type = "trade"

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
            self.flowing = True
            stats.trades += count
            stats.records += count
            self.out.append((self.route.ring, self.records[:count]))


class TickerFeed(EventFeed):
    """One ticker channel."""

    record_type = "ticker"

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
        self.flowing = True
        self.stats.tickers += 1
        self.stats.records += 1
        self.out.append(self.emit)
