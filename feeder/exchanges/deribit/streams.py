"""Per-channel handlers of the Deribit adapter for event streams (trades, ticker, markprice), and their
shared base.

Rules they keep (the adapter's module doc has the whole contract):
- Every record carries its instrument's `instrument_id` (0 when unknown), and LOCKED while the
  exchange has the instrument's currency locked.
- Trades: one record per trade; a trade_seq jump flags that record GAP and is counted; repeated
  trade_seq are dropped and counted. Tickers: one record per notification (options with their IVs,
  greeks and underlying). Markprice: one record per option of the served chain in each notification.
- A disconnect gets a MARKER|GAP record (`feeder.ring.gaps`) on every event ring that published
  since its last marker (one per ring: in a chain ring it has instrument_id 0 and speaks for all):
  readers learn at once that the stream is interrupted, and no event is repeated (a reader summing
  trade amounts over non-MARKER records counts each trade once).
- An instrument that ends gets a MARKER|FINAL record with its instrument_id on each event ring.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from feeder.errors import BadMessage
from feeder.exchanges.deribit.channels import Route
from feeder.exchanges.deribit.notices import markprice_items
from feeder.exchanges.deribit.parse import Ticker, Trade, parse_ticker, parse_trade, trades_list
from feeder.exchanges.deribit.records import packer, scratch
from feeder.ring.flags import FINAL, GAP, MARKER
from feeder.ring.gaps import marker

if TYPE_CHECKING:
    from feeder.exchanges.deribit.adapter import DeribitAdapter

Emit = tuple[str, np.ndarray]
MS = 1_000_000  # Deribit timestamps are ms; records hold ns

COMMON = ("flags", "instrument_id", "ts_exchange", "ts_recv")
_TRADE_OFF, _pack_trade = packer("trade", COMMON + Trade._fields[1:])
_TICKER_OFF, _pack_ticker = packer("ticker", COMMON + Ticker._fields[1:])
_MARK_OFF, _pack_mark = packer("markprice", (*COMMON, "mark_price", "iv"))
_TRADE_SIZE = scratch("trade").itemsize
_MARK_SIZE = scratch("markprice").itemsize


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
        self.iid = route.instrument_id
        self.locked = 0  # LOCKED while the exchange has the instrument's currency locked
        self.messages = 0  # notifications of the channel (with redundancy: the copies the arbiter let in)
        self.last_ns = 0  # receive time of the last one (0: none yet)
        self.stats = adapter.stats
        self.out = adapter._out
        self.request = adapter.requests.append
        self._reject = adapter._reject
        self._marked = adapter._marked

    def __call__(self, data: Any, recv_ns: int) -> None:
        """One notification's `params.data` for this channel (every subclass takes its own)."""
        raise NotImplementedError

    def reject(self, exc: BadMessage) -> None:
        self._reject(self.route, exc)

    def disconnected(self, now_ns: int) -> None:
        """The connection dropped (event streams: see EventFeed)."""

    def lock(self, locked: int, now_ns: int) -> None:
        """The instrument's currency was locked (LOCKED) or unlocked (0)."""
        self.locked = locked

    def final(self, now_ns: int) -> None:
        """The instrument ended (settled, expired, delisted): its last record in the ring."""


class EventFeed(ChannelFeed):
    """An event stream: a MARKER|GAP record on a disconnect if anything was published since the last."""

    record_type = ""

    def __init__(self, adapter: DeribitAdapter, route: Route):
        super().__init__(adapter, route)
        self.flowing = False  # published since the last marker

    def disconnected(self, now_ns: int) -> None:
        ring = self.route.ring
        if self.flowing:
            self.flowing = False
            if ring not in self._marked:  # one marker per ring, for every instrument of a chain
                self._marked.add(ring)
                self._emit_marker(GAP, 0, now_ns)

    def final(self, now_ns: int) -> None:
        self.flowing = False
        self._emit_marker(FINAL, self.iid, now_ns)

    def _emit_marker(self, flags: int, iid: int, now_ns: int) -> None:
        record = marker(scratch(self.record_type).dtype, now_ns)
        record["flags"] = MARKER | flags
        record["instrument_id"] = iid
        self.stats.markers += 1
        self.stats.records += 1
        self.out.append((self.route.ring, record))


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
        # ignore: numpy declares ndarray a Buffer only for Python >= 3.12 (PEP 688)
        buf = memoryview(self.records.view(np.uint8))  # type: ignore[arg-type]
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
            _pack_trade(
                buf, count * _TRADE_SIZE + _TRADE_OFF, flags | self.locked, self.iid, trade[0] * MS, recv_ns,
                *trade[1:],
            )  # fmt: skip
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
        # ignore: numpy declares ndarray a Buffer only for Python >= 3.12 (PEP 688)
        self.buf = memoryview(self.record.view(np.uint8))  # type: ignore[arg-type]
        self.emit: Emit = (route.ring, self.record)
        self.ids = adapter.ids

    def __call__(self, data: Any, recv_ns: int) -> None:
        try:
            ticker = parse_ticker(data, self.instrument, self.ids)
        except BadMessage as exc:
            self.reject(exc)
            return
        _pack_ticker(self.buf, _TICKER_OFF, self.locked, self.iid, ticker[0] * MS, recv_ns, *ticker[1:])
        self.flowing = True
        self.stats.tickers += 1
        self.stats.records += 1
        self.out.append(self.emit)


class MarkpriceFeed(EventFeed):
    """`markprice.options.<index>`: one record per option the feeder serves (its `members`), named by id;
    options of the index it does not serve are skipped (counted)."""

    record_type = "markprice"

    def __init__(self, adapter: DeribitAdapter, route: Route):
        super().__init__(adapter, route)
        self.records = scratch("markprice", 256)
        self.members: dict[str, int] = {}  # option name -> instrument_id

    def __call__(self, data: Any, recv_ns: int) -> None:
        try:
            items = markprice_items(data)
        except BadMessage as exc:
            self.reject(exc)
            return
        if len(items) > len(self.records):
            self.records = scratch("markprice", len(items))
        # ignore: numpy declares ndarray a Buffer only for Python >= 3.12 (PEP 688)
        buf = memoryview(self.records.view(np.uint8))  # type: ignore[arg-type]
        members, flags, count = self.members, self.locked, 0
        for name, timestamp_ms, mark_price, iv in items:
            iid = members.get(name)
            if iid is None:
                self.stats.markprice_unserved += 1
                continue
            _pack_mark(
                buf, count * _MARK_SIZE + _MARK_OFF, flags, iid, timestamp_ms * MS, recv_ns, mark_price, iv
            )
            count += 1
        if count:
            self.flowing = True
            self.stats.records += count
            self.out.append((self.route.ring, self.records[:count]))
