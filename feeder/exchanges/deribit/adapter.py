"""The Deribit market-data core: notifications in, ring records and requests out. No I/O.

`DeribitAdapter.feed(msg, recv_ns)` takes a decoded `subscription` notification and returns the records
to publish as `(ring name, records)` pairs; requests it wants sent (a resubscription after a gap) are
collected as data and taken with `take_requests()`. `audit(channel, result, now_ns)` judges the
exchange's own `public/get_order_book` answer against what was published. Rules it keeps:
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
- Trades and tickers (`streams.py`): one record per trade (trade_seq jumps flag GAP, repeats are
  dropped) and per ticker; a disconnect puts a MARKER|GAP record on each event ring.
- The returned list and the record arrays in it are reused: publish them before the next call.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from typing import Any

from feeder.core.audit import Verdict
from feeder.errors import BadMessage, ConfigError, UsageError
from feeder.exchanges.deribit.books import CROSSED_MODES, BookFeed
from feeder.exchanges.deribit.channels import Route
from feeder.exchanges.deribit.streams import ChannelFeed, Emit, Resubscribe, TickerFeed, TradeFeed
from feeder.exchanges.deribit.sync import BookSync
from feeder.ring.schema import record_schema

log = logging.getLogger(__name__)

__all__ = ["AdapterStats", "DeribitAdapter", "Emit", "Resubscribe"]

ORDER_BOOK_DEPTHS = (1, 5, 10, 20, 50, 100, 1000, 10000)  # public/get_order_book accepts only these


class AdapterStats:
    """Counters over all channels of one adapter."""

    __slots__ = (
        "audit_failures",
        "book_changes",
        "crossed",
        "duplicates",
        "gaps",
        "inconsistent",
        "markers",
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


_FEEDS = {"book": BookFeed, "trades": TradeFeed, "ticker": TickerFeed}


class DeribitAdapter:
    """Market-data protocol core for the channels of one connection."""

    def __init__(self, routes: Iterable[Route], crossed: str = "resync"):
        if crossed not in CROSSED_MODES:
            raise ConfigError("crossed", crossed, f"one of {', '.join(CROSSED_MODES)}")
        self.crossed = crossed
        self.stats = AdapterStats()
        self.rejections: Counter[str] = Counter()  # by field
        self.last_rejection = ""
        self._out: list[Emit] = []
        self.requests: list[Resubscribe] = []  # to send, oldest first; take_requests() empties this list
        self._feeds: dict[str, ChannelFeed] = {}
        self._books: dict[str, BookFeed] = {}
        self.routes: dict[str, Route] = {}
        for route in routes:
            self.routes[route.channel] = route
            feed = self._feeds[route.channel] = _FEEDS[route.stream](self, route)
            if isinstance(feed, BookFeed):
                self._books[route.channel] = feed

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
        """The connection dropped: every live book gets a GAP record, every event ring that published
        since its last marker a MARKER|GAP record; pending resyncs are moot."""
        out = self._out
        out.clear()
        self.requests.clear()
        for feed in self._feeds.values():
            feed.disconnected(now_ns)
        return out

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
        ring, as plain ints, without building `metrics()`."""
        gaps: dict[str, int] = {}
        audits: dict[str, dict[str, int]] = {}
        for feed in self._books.values():
            ring, audit = feed.route.ring, feed.audit
            gaps[ring] = feed.gaps
            audits[ring] = {
                "passed": audit.passed,
                "failed": audit.failed,
                "unverifiable": audit.unverifiable,
                "last_passed_ns": audit.last_passed_ns,
                "crossed": feed.crossed,
            }
        for feed in self._feeds.values():
            if isinstance(feed, TradeFeed):
                gaps[feed.route.ring] = feed.gaps
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
