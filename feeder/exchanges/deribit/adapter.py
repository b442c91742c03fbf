"""The Deribit market-data core: notifications in, ring records and requests out. No I/O.

`DeribitAdapter.feed(msg, recv_ns)` takes a decoded `subscription` notification and returns the records
to publish as `(ring name, records)` pairs; requests it wants sent (a resubscription after a gap) are
collected as data and taken with `take_requests()`. `audit_started(channel)` when an audit request
goes out, then `audit(channel, result, now_ns)` judges the exchange's own `public/get_order_book`
answer against what was published since. Rules it keeps:
- It never raises on exchange data. A bad message is a counted rejection (by field); if it could have
  changed a book, that book is marked GAP and resynced.
- Books (`books.py`; `sync.py` holds the state machine): a snapshot (also a legacy one without `type`)
  is published SNAPSHOT-flagged; a change is applied only when its `prev_change_id` is the last
  `change_id`; duplicates and stale messages (change_id <= last) are dropped and counted; a gap, a bad
  message or an action the book contradicts (`new` on an existing level, `change`/`delete` of a missing
  one) publishes one GAP record at once and asks for an unsubscribe + subscribe of that channel only.
  A GAP record repeats the last published top-N and change_id; nothing more is published for that book
  until the new snapshot. A crossed or locked book is published CROSSED|GAP and resynced (`crossed=
  "resync"`, the default) or published CROSSED and kept (`crossed="flag"`). A failed audit is a GAP
  at once and a resync.
- Trades, tickers and mark prices (`streams.py`): one record per trade (trade_seq jumps flag GAP,
  repeats are dropped), per ticker and per served option of a markprice message; a disconnect puts a
  MARKER|GAP record on each event ring.
- Every record carries its route's `instrument_id`; a chain ring is fed by one route per instrument
  (the routes of `markprice.<index>` share its one channel).
- The universe: `instrument.state.*` notifications come out as events (`take_events`), for the
  supervisor to decide; a `platform_state` lock flags every record of the locked index's instruments
  LOCKED and republishes their books at once (and again when the lock is lifted).
- Routes come and go at run time (`add`, `remove`); a removed instrument gets its FINAL records.
- Per served channel, the notifications it carried and the receive time of the last one
  (`channel_figures`), for silence alarms; silence alone never flags a book (markets pause).
- The returned list and the record arrays in it are reused: publish them before the next call.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from feeder.core.audit import Verdict
from feeder.errors import BadMessage, ConfigError, UsageError
from feeder.exchanges.deribit.books import CROSSED_MODES, BookFeed
from feeder.exchanges.deribit.channels import Route
from feeder.exchanges.deribit.notices import InstrumentState, parse_instrument_state, parse_platform_state
from feeder.exchanges.deribit.streams import (
    ChannelFeed,
    Emit,
    MarkpriceFeed,
    Resubscribe,
    TickerFeed,
    TradeFeed,
)
from feeder.exchanges.deribit.sync import BookSync
from feeder.ring.chains import MARKPRICE
from feeder.ring.flags import LOCKED
from feeder.ring.schema import record_schema

log = logging.getLogger(__name__)

__all__ = ["AdapterStats", "DeribitAdapter", "Emit", "Resubscribe"]

ORDER_BOOK_DEPTHS = (1, 5, 10, 20, 50, 100, 1000, 10000)
_AUDIT_FIGURES = (
    "passed",
    "failed",
    "unverifiable",
    "last_passed_ns",
    "crossed",
)  # public/get_order_book accepts only these


class AdapterStats:
    """Counters over all channels of one adapter."""

    __slots__ = (
        "audit_failures",
        "book_changes",
        "crossed",
        "duplicates",
        "gaps",
        "inconsistent",
        "instrument_states",
        "locks",
        "markers",
        "markprice_unserved",
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
    # the same counters, typed for mypy (tests/deribit/test_adapter.py checks the two lists agree)
    audit_failures: int
    book_changes: int
    crossed: int
    duplicates: int
    gaps: int
    inconsistent: int
    instrument_states: int
    locks: int
    markers: int
    markprice_unserved: int
    notifications: int
    records: int
    rejected: int
    resyncs: int
    skipped: int
    snapshots: int
    tickers: int
    trade_duplicates: int
    trade_gaps: int
    trades: int
    trades_missed: int
    unknown_channel: int

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


_FEEDS = {"book": BookFeed, "trades": TradeFeed, "ticker": TickerFeed, MARKPRICE: MarkpriceFeed}
PLATFORM_STATE = "platform_state"


class DeribitAdapter:
    """Market-data protocol core for the channels of one connection."""

    def __init__(
        self,
        routes: Iterable[Route],
        crossed: str = "resync",
        *,
        ids: Mapping[str, int] | None = None,
        indexes: Mapping[str, str] | None = None,
    ):
        """`ids`: instrument name -> instrument_id of every instrument a ticker may name as its
        underlying; `indexes`: instrument -> price index, for platform_state locks."""
        if crossed not in CROSSED_MODES:
            raise ConfigError("crossed", crossed, f"one of {', '.join(CROSSED_MODES)}")
        self.crossed = crossed
        self.stats = AdapterStats()
        self.rejections: Counter[str] = Counter()  # by field
        self.last_rejection = ""
        self.ids: dict[str, int] = dict(ids or {})
        self.indexes: dict[str, str] = dict(indexes or {})
        self.locked: set[str] = set()  # price indexes the exchange has locked
        self._out: list[Emit] = []
        self._marked: set[str] = set()  # event rings given a marker during this disconnect
        self.requests: list[Resubscribe] = []  # to send, oldest first; take_requests() empties this list
        self._events: list[tuple[InstrumentState, str]] = []
        self._feeds: dict[str, ChannelFeed] = {}
        self._books: dict[str, BookFeed] = {}
        self._by_instrument: dict[str, list[Route]] = {}
        self._notices: dict[str, Any] = {}
        self.routes: dict[str, Route] = {}
        self.add(routes)

    def add(self, routes: Iterable[Route]) -> list[str]:
        """Serve more routes; returns the channels to subscribe (new ones only)."""
        new: list[str] = []
        for route in routes:
            feed = self._feeds.get(route.channel)
            if (
                feed is not None
                and not isinstance(feed, MarkpriceFeed)
                and self.routes[route.channel] == route
            ):
                continue  # served already (a worker started with it and was told to add it too)
            self.ids.setdefault(route.instrument, route.instrument_id)
            self._by_instrument.setdefault(route.instrument, []).append(route)
            if feed is None:
                feed = self._feeds[route.channel] = _FEEDS[route.stream](self, route)
                self.routes[route.channel] = route
                new.append(route.channel)
                if isinstance(feed, BookFeed):
                    self._books[route.channel] = feed
            elif not isinstance(feed, MarkpriceFeed):
                raise ConfigError(
                    "routes", route.channel, "one ring per channel: the channel is served already"
                )
            if isinstance(feed, MarkpriceFeed):
                if route.instrument in feed.members:
                    self._by_instrument[route.instrument].pop()
                feed.members[route.instrument] = route.instrument_id
            if self.indexes.get(route.instrument) in self.locked:
                feed.locked = LOCKED
        return new

    def remove(self, instruments: Iterable[str], now_ns: int) -> tuple[list[Emit], list[str]]:
        """Stop serving instruments (they ended): (their FINAL records to publish, channels to
        unsubscribe)."""
        out = self._out
        out.clear()
        dropped: list[str] = []
        for instrument in instruments:
            for route in self._by_instrument.pop(instrument, ()):
                feed = self._feeds[route.channel]
                if isinstance(feed, MarkpriceFeed):
                    feed.members.pop(instrument, None)
                    if feed.members:
                        continue
                else:
                    feed.final(now_ns)
                del self._feeds[route.channel], self.routes[route.channel]
                self._books.pop(route.channel, None)
                dropped.append(route.channel)
        return out, dropped

    def watch(self, channels: Iterable[str]) -> list[str]:
        """Follow the market itself: `instrument.state.*` channels (events) and `platform_state`."""
        new = [channel for channel in channels if channel not in self._notices]
        for channel in new:
            self._notices[channel] = (
                self._platform
                if channel == PLATFORM_STATE
                else functools.partial(self._instrument_state, channel)
            )
        return new

    @property
    def watched(self) -> list[str]:
        return list(self._notices)

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
            notice = self._notices.get(params["channel"])
            if notice is None:
                self.stats.unknown_channel += 1
            else:
                notice(data, recv_ns)
            return out
        feed.messages += 1  # the channel's silence (`channel_figures`): two stores, nothing else
        feed.last_ns = recv_ns
        feed(data, recv_ns)
        return out

    def _instrument_state(self, channel: str, data: Any, recv_ns: int) -> None:
        try:
            event = parse_instrument_state(data)
        except BadMessage as exc:
            self._reject(None, exc)
            return
        self.stats.instrument_states += 1
        self._events.append((event, channel))

    def _platform(self, data: Any, recv_ns: int) -> None:
        try:
            lock = parse_platform_state(data)
        except BadMessage as exc:
            self._reject(None, exc)
            return
        if lock is None or (lock.price_index in self.locked) == lock.locked:
            return
        self.stats.locks += 1
        if lock.locked:
            self.locked.add(lock.price_index)
        else:
            self.locked.discard(lock.price_index)
        flag = LOCKED if lock.locked else 0
        for instrument, routes in self._by_instrument.items():
            if self.indexes.get(instrument) == lock.price_index:
                for route in routes:
                    self._feeds[route.channel].lock(flag, recv_ns)
        log.warning("%s %s by the exchange", lock.price_index, "locked" if lock.locked else "unlocked")

    def take_events(self) -> list[tuple[InstrumentState, str]]:
        """Instrument listings and ends seen since the last call, oldest first, with their channel."""
        events, self._events = self._events, []
        return events

    @property
    def has_events(self) -> bool:
        return bool(self._events)

    def disconnected(self, now_ns: int) -> list[Emit]:
        """The connection dropped: every live book gets a GAP record, every event ring that published
        since its last marker a MARKER|GAP record; pending resyncs are moot."""
        out = self._out
        out.clear()
        self.requests.clear()
        self._marked.clear()
        for feed in self._feeds.values():
            feed.disconnected(now_ns)
        return out

    def lost(self, channels: Iterable[str], now_ns: int) -> list[Emit]:
        """These channels stopped arriving (the only connection feeding them dropped, others stay up): the
        same GAP records and markers as `disconnected`, for them only."""
        out = self._out
        out.clear()
        self._marked.clear()
        for channel in channels:
            feed = self._feeds.get(channel)
            if feed is not None:
                feed.disconnected(now_ns)
        return out

    def channel_feed(self, channel: str) -> ChannelFeed | None:
        """The handler serving `channel` (None: not one of the routes)."""
        return self._feeds.get(channel)

    def channel_figures(self) -> list[tuple[str, str, int, int]]:
        """(channel, ring, notifications, receive ns of the last one or 0) of every served channel."""
        return [
            (channel, feed.route.ring, feed.messages, feed.last_ns) for channel, feed in self._feeds.items()
        ]

    def continue_trades(self, channel: str, last_trade_seq: int) -> None:
        """Carry trade_seq continuity over from a previous writer of the ring (a restarted worker)."""
        feed = self._feeds[channel]
        if not isinstance(feed, TradeFeed):
            raise UsageError(f"{channel} is not a trades channel")
        feed.last_seq = last_trade_seq

    def take_requests(self) -> list[Resubscribe]:
        """Requests to send, oldest first (each channel at most once)."""
        seen: dict[str, Resubscribe] = {}
        for request in self.requests:
            seen.setdefault(request.channel, request)
        self.requests.clear()
        return list(seen.values())

    def book_state(self, channel: str) -> Any:
        """Sync state of a book channel (a `BookSync`)."""
        return self._books[channel].state

    # --- the live audit --------------------------------------------------------------------------

    @property
    def audit_channels(self) -> list[str]:
        """Book channels that can be audited (grouped books carry rounded levels: never)."""
        return [channel for channel, feed in self._books.items() if not feed.route.grouped]

    def auditable(self, channel: str) -> bool:
        """Whether an audit of `channel` is worth sending now (its book is live)."""
        return self._books[channel].auditable

    @staticmethod
    def audit_params(route: Route) -> dict[str, Any]:
        """The `public/get_order_book` params for auditing `route`: depth at least the record's levels."""
        levels = record_schema(route.record_type).levels or 0
        depth = next(d for d in ORDER_BOOK_DEPTHS if d >= levels)
        return {"instrument_name": route.instrument, "depth": depth}

    def audit_started(self, channel: str) -> None:
        """The audit request for `channel` goes out now: its book keeps what it publishes until the answer
        (`audit` judges it against those records only; nothing older can be asked for)."""
        self._books[channel].audit_started()

    def audit(self, channel: str, result: Any, now_ns: int) -> list[Emit]:
        """The exchange's `public/get_order_book` answer for `channel`: judged (see books.py); on a
        mismatch the returned GAP record must be published and the resubscription sent."""
        out = self._out
        out.clear()
        self._books[channel].check(result, now_ns)
        return out

    def audit_unverifiable(self, channel: str, reason: str) -> Verdict:
        """An audit that could not be made (the request failed): counted as unverifiable."""
        return self._books[channel].audit.not_verifiable(reason)

    def metrics(self) -> dict[str, Any]:
        """Counters, rejections by field, and per book channel its state, gaps, resyncs and audits."""
        books = {
            channel: {
                "ring": feed.route.ring,
                "state": feed.state.value,
                "change_id": feed.change_id,
                "gaps": feed.gaps,
                "resyncs": feed.resyncs,
                "snapshots": feed.snapshots,
                "crossed": feed.crossed,
                "audits": feed.audit.figures(),
            }
            for channel, feed in self._books.items()
        }
        trades = {
            channel: {
                "ring": feed.route.ring,
                "last_seq": feed.last_seq,
                "gaps": feed.gaps,
                "missed": feed.missed,
            }
            for channel, feed in self._feeds.items()
            if isinstance(feed, TradeFeed)
        }
        return {
            **self.stats.as_dict(),
            "rejections": dict(self.rejections),
            "last_rejection": self.last_rejection,
            "books": books,
            "trades_channels": trades,
        }

    def book(self, instrument: str, depth: int | None = None) -> dict[str, Any]:
        """The current book of `instrument` as this adapter keeps it (every level, or the best `depth` per
        side), with its change_id, sync state and the flags of its last record. Levels only while the
        book is live: a book in another state is not trustworthy (it may be half updated)."""
        feed = next((f for f in self._books.values() if f.instrument == instrument), None)
        if feed is None:
            served = sorted(f.instrument for f in self._books.values())
            raise UsageError(f"no book of {instrument!r} here (books: {', '.join(served) or 'none'})")
        if depth is not None and (type(depth) is not int or depth < 1):
            raise UsageError(f"book depth must be a positive integer or None for every level, got {depth!r}")
        live = feed.state is BookSync.LIVE
        book, record = feed.book, feed.record[0]
        return {
            "instrument": instrument,
            "ring": feed.route.ring,
            "state": feed.state.value,
            "change_id": feed.change_id,
            "flags": int(record["flags"]),
            "ts_exchange": int(record["ts_exchange"]),
            "ts_recv": int(record["ts_recv"]),
            "bids": [list(level) for level in book.bids.top(depth or len(book.bids))] if live else [],
            "asks": [list(level) for level in book.asks.top(depth or len(book.asks))] if live else [],
        }

    def ring_figures(self) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
        """(gaps per book and trades ring, audit figures per book ring): what the supervisor shows per
        ring, as plain ints, without building `metrics()`; a chain ring's add up over its instruments."""
        gaps: dict[str, int] = {}
        audits: dict[str, dict[str, int]] = {}
        for feed in self._books.values():
            ring, audit = feed.route.ring, feed.audit
            gaps[ring] = gaps.get(ring, 0) + feed.gaps
            figures = audits.setdefault(ring, dict.fromkeys(_AUDIT_FIGURES, 0))
            figures["passed"] += audit.passed
            figures["failed"] += audit.failed
            figures["unverifiable"] += audit.unverifiable
            figures["crossed"] += feed.crossed
            figures["last_passed_ns"] = max(figures["last_passed_ns"], audit.last_passed_ns)
        for channel_feed in self._feeds.values():
            if isinstance(channel_feed, TradeFeed):
                ring = channel_feed.route.ring
                gaps[ring] = gaps.get(ring, 0) + channel_feed.gaps
        return gaps, audits

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
