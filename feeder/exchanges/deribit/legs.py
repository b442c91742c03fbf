"""Redundant connections in the Deribit adapter: every copy, from whichever leg, through its stream's arbiter
(`feeder.core.arbiter`) before the one adapter that writes the rings. No I/O.

Where the legs live: both are connections (two `Client`s) of the ring's own worker. A ring keeps one writer,
the arbiter sees the published book (its change_id) synchronously, and the winning copy is published in the
same loop turn it arrives in, with no hop between processes (measured by scripts/bench_e2e.py on a loaded
2-core machine: one more ring hop to a polling process is 2-3 µs p50 but 36 µs to 2.4 ms p99, and that
process would poll on a core of its own). The price is that both copies are decoded on one core (worker CPU
per update 1.3-1.4x); a losing copy is dropped after a look at its ids (change_id, prev_change_id,
trade_seq, timestamp), before it is validated or applied.

`Legs(adapter, count, publish)`: `feed(leg, msg, recv_ns)` for every notification of a leg; `connected(leg)`
when a leg is connected (before its subscriptions are restored), `down(leg, now_ns)` when it dropped; `tick(now_ns)`
now and then (a held copy whose hole nobody fills breaks its book); `take_requests()`: (leg, Resubscribe)
to send. `publish` receives what the adapter emits, at once (its records are reused by the next call).
Rules it keeps:
- Books: a change reaches the adapter only when it chains onto the published book (the first copy wins), a
  copy ahead is held for the other leg (`feeder.core.arbiter`: at most HOLD_NS and HOLD_MAX), a hole no leg
  fills goes to the adapter, which finds the gap: GAP, and every connected leg resubscribes. Anything that
  breaks a book (gap, bad message, crossed, audit) sends every leg back to its own snapshot.
- A leg whose connection dropped, or whose copies are out of step, resubscribes on its own; its snapshot
  is compared with what was published at the same change_id (a `BookAudit` window per book and leg, kept
  only while that leg is out: nothing is copied while both legs feed the book) and it rejoins when they are
  equal; otherwise it subscribes again. Nothing is published for a rejoin (no SNAPSHOT record).
- A book whose only joined leg drops gets its GAP record as on a disconnect; with every leg down the adapter
  is told `disconnected`, exactly as with one connection.
- Trades go through when they continue the published trade_seq (a partly new batch: the adapter drops the
  repeats); tickers and mark prices through `Stamps`; instrument.state and other market notices once per
  content (both legs bring them).
- Per channel and leg, the copies it brought and the receive time of the last one (`channel_figures`): two
  stores per copy, on the object its dispatch looks up anyway.
- A book message whose ids are malformed, from one of two legs feeding the book, is rejected (counted) and
  only its leg resyncs; one that fails deeper (an entry the one pass refuses, a crossed book) has touched the
  book already: the book breaks, as with one connection.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from feeder.core.arbiter import Chain, LegEvent, LegState, LegStats, Offer, Sequence, Stamps
from feeder.core.audit import BookAudit, Verdict
from feeder.errors import BadMessage, ConfigError
from feeder.exchanges.deribit.adapter import DeribitAdapter
from feeder.exchanges.deribit.books import AUDIT_WAIT_NS, BookFeed, packed_levels
from feeder.exchanges.deribit.parse import parse_book
from feeder.exchanges.deribit.streams import Emit, MarkpriceFeed, Resubscribe, TickerFeed, TradeFeed
from feeder.exchanges.deribit.sync import BookSync

__all__ = ["Legs"]

NOTICES_SEEN = 4096  # market notices remembered, to publish each once
_LIVE = BookSync.LIVE
_JOINED, _WAITING = LegState.JOINED, LegState.WAITING
Publish = Callable[[list[Emit]], None]
Handler = Callable[[int, Any, Any, int], None]


class _Channel:
    """One channel's dispatch: its handler, and per leg the copies it brought and when the last came."""

    __slots__ = ("handle", "last_ns", "messages")

    def __init__(self, handle: Handler, count: int):
        self.handle = handle
        self.messages = [0] * count
        self.last_ns = [0] * count  # receive ns of the leg's last copy (0: none yet)


class _Book:
    """One book channel's arbitration: its chain, and per leg the window a rejoin is compared with."""

    __slots__ = ("chain", "feed", "joins", "watching")

    def __init__(self, feed: BookFeed, stats: list[LegStats]):
        self.feed = feed
        self.chain = Chain(stats)
        self.joins = [BookAudit() for _ in stats]
        self.watching = False  # some leg's join is recording or pending: published levels go to it

    def watch(self, leg: int) -> None:
        """Remember the book from now on, for `leg`'s snapshot to be compared with."""
        feed = self.feed
        if feed.state is _LIVE:
            self.joins[leg].start(feed.change_id, bytes(feed.levels))
            self.watching = True

    def settle_watching(self) -> None:
        self.watching = any(j.recording or j.pending is not None for j in self.joins)


class Legs:
    """Arbitration of `count` legs in front of one `DeribitAdapter` (see the module doc)."""

    def __init__(self, adapter: DeribitAdapter, count: int, publish: Publish):
        if type(count) is not int or count < 2:
            raise ConfigError("redundancy", count, "2 or more legs (one connection needs no arbiter)")
        self.adapter, self.count, self.publish = adapter, count, publish
        self.stats = [LegStats() for _ in range(count)]
        self.up = [False] * count  # connected
        self.resyncs = [0] * count  # resubscriptions of one leg alone (out of step, a snapshot that differs)
        self.requests: list[tuple[int, Resubscribe]] = []
        self._channels: dict[str, _Channel] = {}
        self._books: dict[str, _Book] = {}
        self._holding: dict[str, tuple[Chain | Sequence, Callable[[list[Any]], None]]] = {}
        self._next_expiry = 0
        self._notices: OrderedDict[tuple[str, str], None] = OrderedDict()

    # --- the receive path ------------------------------------------------------------------------

    def feed(self, leg: int, msg: Any, recv_ns: int) -> None:
        """One notification from `leg`; whatever is published goes to `publish` before this returns."""
        try:
            params = msg["params"]
            channel, data = params["channel"], params["data"]
            seen = self._channels.get(channel) or self._channel(channel)
        except (KeyError, TypeError, IndexError):
            self._apply(msg, recv_ns)  # the adapter rejects it (counted)
            return
        seen.messages[leg] += 1
        seen.last_ns[leg] = recv_ns
        seen.handle(leg, msg, data, recv_ns)
        if self._holding and recv_ns >= self._next_expiry:
            self.tick(recv_ns)

    def _channel(self, channel: str) -> _Channel:
        feed = self.adapter.channel_feed(channel)
        handler: Handler
        if isinstance(feed, BookFeed):
            book = self._books[channel] = _Book(feed, self.stats)
            handler = lambda leg, msg, data, recv_ns: self._book(book, leg, msg, data, recv_ns)  # noqa: E731
        elif isinstance(feed, TradeFeed):
            seq = Sequence(self.stats)
            seq.up = self.up  # the legs carrying a channel are the connected ones
            handler = lambda leg, msg, data, recv_ns: self._trades(feed, seq, leg, msg, data, recv_ns)  # noqa: E731
        elif isinstance(feed, TickerFeed | MarkpriceFeed):
            stamps = Stamps(self.stats)
            handler = lambda leg, msg, data, recv_ns: self._stamped(stamps, leg, msg, data, recv_ns)  # noqa: E731
        else:  # market notices, or a channel nobody serves (the adapter counts it): not kept
            return _Channel(
                lambda leg, msg, data, recv_ns: self._notice(channel, msg, data, recv_ns), self.count
            )
        seen = self._channels[channel] = _Channel(handler, self.count)
        return seen

    def forget(self, channels: list[str]) -> None:
        """Channels the adapter no longer serves (`DeribitAdapter.remove`)."""
        for channel in channels:
            self._channels.pop(channel, None)
            self._books.pop(channel, None)
            self._holding.pop(channel, None)

    def _apply(self, msg: Any, recv_ns: int) -> None:
        """The adapter takes the copy; what it emits is published; a book it broke resyncs on every leg."""
        adapter = self.adapter
        self.publish(adapter.feed(msg, recv_ns))
        if adapter.requests:
            self.take_broken()

    def take_broken(self) -> None:
        """The adapter's resubscriptions (a book it found broken, an audit that failed): every leg of that
        book waits for its own snapshot, and every connected leg resubscribes."""
        for request in self.adapter.take_requests():
            book = self._books.get(request.channel)
            if book is not None:
                self._reset(book)
            self.requests.extend((leg, request) for leg in range(self.count) if self.up[leg])

    def _reset(self, book: _Book) -> None:
        chain = book.chain
        chain.take_held()
        for leg, state in enumerate(chain.legs):
            if state is not _WAITING:
                chain.event(leg, LegEvent.RESYNC)
            book.joins[leg].reset("the book broke")
        book.watching = False

    # --- books -----------------------------------------------------------------------------------

    def _book(self, book: _Book, leg: int, msg: Any, data: Any, recv_ns: int) -> None:
        feed, chain = book.feed, book.chain
        if type(data) is not dict:
            self._unsure(book, leg, msg, recv_ns)
            return
        cid, prev, kind = data.get("change_id"), data.get("prev_change_id"), data.get("type")
        if feed.route.grouped:  # a whole book every time: the first copy of each change_id wins
            if feed.state is _LIVE and type(cid) is int and cid <= feed.change_id:
                chain.dropped(leg, cid, recv_ns)
                return
            self._apply(msg, recv_ns)
            if feed.state is _LIVE and feed.change_id == cid:
                chain.won(leg, cid, recv_ns)
            return
        if kind == "snapshot" or (kind is None and not prev):
            self._snapshot(book, leg, msg, data, recv_ns)
            return
        if type(cid) is not int or type(prev) is not int or kind != "change":
            self._unsure(book, leg, msg, recv_ns)
            return
        if feed.state is not _LIVE:
            self.stats[leg].ignored += 1  # the book waits for a snapshot
            return
        offer = chain.offer(leg, cid, prev, feed.change_id, recv_ns)
        if offer is Offer.APPLY or offer is Offer.HOLE:
            self._change(book, leg, msg, cid, recv_ns)
        elif offer is Offer.HOLD:
            chain.hold(prev, cid, leg, msg, recv_ns)
            self._held(feed.route.channel, chain, lambda entries: self._expired_book(book, entries))
        elif offer is Offer.OVERLAP:
            self._leg_resync(book, leg, "out of step with the book")

    def _unsure(self, book: _Book, leg: int, msg: Any, recv_ns: int) -> None:
        """A copy the look at its ids could not place. From a leg that does not feed the book: ignored. A bad
        one while another leg feeds the book too: rejected (counted), and only its leg resyncs (the other
        brings the change; the book was not touched). Otherwise the adapter judges it."""
        chain, feed = book.chain, book.feed
        if chain.legs[leg] is not _JOINED:
            self.stats[leg].ignored += 1
            return
        if chain.joined > 1 and feed.state is _LIVE:
            try:
                feed.parse(msg["params"]["data"], feed.instrument)
            except BadMessage as exc:
                feed.reject(exc)
                self._leg_resync(book, leg, "a bad message")
                return
        self._apply(msg, recv_ns)

    def _change(self, book: _Book, leg: int, msg: Any, cid: int, recv_ns: int) -> None:
        """Apply a change (and the held copies that chain on after it), each counted as its leg's win."""
        feed, chain = book.feed, book.chain
        self._apply(msg, recv_ns)
        while feed.state is _LIVE and feed.change_id == cid:
            chain.won(leg, cid, recv_ns)
            if book.watching:
                self._watched(book, recv_ns)
            entry = chain.release(cid)
            if entry is None:
                return
            cid, leg, msg, recv_ns = entry
            self._apply(msg, recv_ns)

    def _expired_book(self, book: _Book, entries: list[Any]) -> None:
        """Nobody filled the hole in time: the adapter gets the first copy after it, finds the gap (GAP)."""
        if book.feed.state is _LIVE and entries:
            self._apply(entries[0][2], entries[0][3])

    def _snapshot(self, book: _Book, leg: int, msg: Any, data: Any, recv_ns: int) -> None:
        feed, chain = book.feed, book.chain
        if feed.state is not _LIVE:  # no leg feeds the book: this snapshot becomes it
            self._apply(msg, recv_ns)
            if feed.state is _LIVE:
                chain.event(leg, LegEvent.LOADED)
                for other in range(self.count):
                    if other != leg and self.up[other] and chain.legs[other] is not _JOINED:
                        book.watch(other)
            return
        join = book.joins[leg]
        if chain.legs[leg] is not _WAITING:  # the exchange sent a snapshot on a leg that feeds the book
            chain.event(leg, LegEvent.RESYNC)
            join.reset("a new snapshot")
        if not join.recording:
            book.watch(leg)
        try:
            update = parse_book(data, feed.instrument)
        except BadMessage as exc:
            feed.reject(exc)
            self._leg_resync(book, leg, "a bad snapshot")
            return
        # the payload's type (or a legacy one's missing prev_change_id) said snapshot, and parse_book agrees
        assert update.snapshot
        verdict = join.check(update.change_id, packed_levels(update, feed.layout), recv_ns, AUDIT_WAIT_NS)
        self._judged(book, leg, verdict, LegEvent.AHEAD)
        book.settle_watching()

    def _watched(self, book: _Book, recv_ns: int) -> None:
        """A change was published while a leg waits to rejoin: into its window, or settling its snapshot."""
        feed = book.feed
        levels = bytes(feed.levels)
        for leg, join in enumerate(book.joins):
            if join.recording or join.pending is not None:
                pending = join.pending is not None
                verdict = join.published(feed.change_id, levels, recv_ns)
                if pending and verdict is not None:
                    self._judged(book, leg, verdict, None)
        book.settle_watching()

    def _judged(self, book: _Book, leg: int, verdict: Verdict, ahead: LegEvent | None) -> None:
        if verdict is Verdict.PASSED:
            book.chain.event(leg, LegEvent.MATCHED)
        elif verdict is Verdict.PENDING and ahead is not None:
            book.chain.event(leg, ahead)
        elif verdict is not Verdict.PENDING:
            reason = "its snapshot differs from the book" if verdict is Verdict.FAILED else "unverifiable"
            self._leg_resync(book, leg, reason)

    def _leg_resync(self, book: _Book, leg: int, reason: str) -> None:
        """One leg of one book subscribes again, for a snapshot to rejoin with; the book goes on."""
        book.chain.event(leg, LegEvent.RESYNC)
        book.joins[leg].reset(reason)
        book.settle_watching()
        self.resyncs[leg] += 1
        if self.up[leg]:
            book.watch(leg)
            self.requests.append((leg, Resubscribe(book.feed.route.channel, reason)))

    # --- trades, tickers, notices ----------------------------------------------------------------

    def _trades(self, feed: TradeFeed, seq: Sequence, leg: int, msg: Any, data: Any, recv_ns: int) -> None:
        try:
            lo, hi = data[0]["trade_seq"], data[-1]["trade_seq"]
            if type(lo) is not int or type(hi) is not int:
                raise TypeError
        except (KeyError, TypeError, IndexError):
            self._apply(msg, recv_ns)  # the adapter rejects what is bad and keeps what is good
            return
        last = feed.last_seq
        if last >= 0 and lo > last + 1:
            offer = seq.offer(leg, lo, last, recv_ns)
            if offer is Offer.HOLD:
                seq.hold(lo - 1, hi, leg, msg, recv_ns)
                self._held(feed.route.channel, seq, lambda entries: self._expired_trades(feed, seq, entries))
                return
        elif last >= 0 and hi <= last:
            seq.dropped(leg, hi, recv_ns)
            return
        self._trades_won(feed, seq, leg, msg, recv_ns)
        while (entry := seq.release(feed.last_seq)) is not None:
            self._trades_won(feed, seq, entry[1], entry[2], entry[3])

    def _trades_won(self, feed: TradeFeed, seq: Sequence, leg: int, msg: Any, recv_ns: int) -> None:
        before = feed.last_seq
        self._apply(msg, recv_ns)
        if feed.last_seq != before:
            seq.won(leg, feed.last_seq, recv_ns)

    def _expired_trades(self, feed: TradeFeed, seq: Sequence, entries: list[Any]) -> None:
        """Nobody brought the missing trades in time: the held ones go out (the first flagged GAP)."""
        for _, leg, msg, recv_ns in entries:
            self._trades_won(feed, seq, leg, msg, recv_ns)

    def _stamped(self, stamps: Stamps, leg: int, msg: Any, data: Any, recv_ns: int) -> None:
        try:
            stamp = data["timestamp"] if type(data) is dict else data[0]["timestamp"]
            if type(stamp) is not int:
                raise TypeError
        except (KeyError, TypeError, IndexError):
            self._apply(msg, recv_ns)  # the adapter rejects it (counted)
            return
        if stamps.offer(leg, stamp, recv_ns):
            self._apply(msg, recv_ns)
            stamps.won(leg, None, recv_ns)

    def _notice(self, channel: str, msg: Any, data: Any, recv_ns: int) -> None:
        key = (channel, repr(data))
        seen = self._notices
        if key in seen:
            return
        seen[key] = None
        if len(seen) > NOTICES_SEEN:
            seen.popitem(last=False)
        self._apply(msg, recv_ns)

    # --- held copies -----------------------------------------------------------------------------

    def _held(self, channel: str, arbiter: Chain | Sequence, flush: Callable[[list[Any]], None]) -> None:
        if channel not in self._holding:
            self._holding[channel] = (arbiter, flush)
            if len(self._holding) == 1 or arbiter.deadline < self._next_expiry:
                self._next_expiry = arbiter.deadline

    def tick(self, now_ns: int) -> None:
        """Held copies that waited long enough: their holes will not be filled."""
        nxt = None
        for channel, (arbiter, flush) in list(self._holding.items()):
            if not arbiter.held:
                del self._holding[channel]
            elif arbiter.expired(now_ns):
                del self._holding[channel]
                flush(arbiter.take_held())
            else:
                nxt = arbiter.deadline if nxt is None else min(nxt, arbiter.deadline)
        self._next_expiry = nxt or 0

    # --- connections -----------------------------------------------------------------------------

    def connected(self, leg: int) -> None:
        """`leg` is connected; its subscriptions are about to be restored: the books it will rejoin keep
        what they publish from now on, for its snapshots to be compared with."""
        self.up[leg] = True
        for book in self._books.values():
            if book.chain.legs[leg] is not _JOINED:
                book.joins[leg].reset("reconnected")
                book.watch(leg)

    def down(self, leg: int, now_ns: int) -> None:
        """`leg`'s connection dropped: books only it fed get their GAP record (every leg down: the adapter's
        `disconnected`, as with one connection) and resync on the legs still up."""
        self.up[leg] = False
        self.requests = [(lg, r) for lg, r in self.requests if lg != leg]
        if not any(self.up):
            for book in self._books.values():
                self._reset(book)
            self.publish(self.adapter.disconnected(now_ns))
            self.requests.clear()
            return
        lost: list[str] = []
        for channel, book in self._books.items():
            chain = book.chain
            was_joined = chain.legs[leg] is _JOINED
            chain.event(leg, LegEvent.DOWN)
            book.joins[leg].reset("disconnected")
            book.settle_watching()
            if was_joined and chain.joined == 0 and book.feed.state is _LIVE:
                lost.append(channel)
                self._reset(book)
        if lost:
            self.publish(self.adapter.lost(lost, now_ns))
            self.requests.extend(
                (other, Resubscribe(channel, "the leg feeding it dropped"))
                for channel in lost
                for other in range(self.count)
                if self.up[other]
            )

    def take_requests(self) -> list[tuple[int, Resubscribe]]:
        """(leg, resubscription) to send, oldest first, each (leg, channel) once."""
        if self.adapter.requests:
            self.take_broken()
        seen: dict[tuple[int, str], Resubscribe] = {}
        for leg, request in self.requests:
            seen.setdefault((leg, request.channel), request)
        self.requests = []
        return [(leg, request) for (leg, _), request in seen.items()]

    # --- what is going on ------------------------------------------------------------------------

    def channel_figures(self, channel: str) -> tuple[list[int], list[int]] | None:
        """(copies per leg, receive ns of each leg's last copy) of a served channel; None: no copy yet."""
        seen = self._channels.get(channel)
        return None if seen is None else (seen.messages, seen.last_ns)

    def joined(self) -> list[int]:
        """Per leg, how many books it feeds now."""
        counts = [0] * self.count
        for book in self._books.values():
            for leg, state in enumerate(book.chain.legs):
                counts[leg] += state is _JOINED
        return counts

    def metrics(self) -> list[dict[str, Any]]:
        """Per leg: connected, books it feeds, arbitration counters (`LegStats`), its own resyncs."""
        joined = self.joined()
        return [
            {"leg": leg, "up": self.up[leg], "books_joined": joined[leg], "resyncs": self.resyncs[leg],
             **self.stats[leg].as_dict()}
            for leg in range(self.count)
        ]  # fmt: skip
