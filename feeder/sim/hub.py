"""The fan-out: sessions, the feeds they subscribe to, and the one path frames take to sockets.

Every frame for a client is appended to its session's buffer (`queue`, `send_book`) and written by
`flush`, one transport write per session per flush; callers flush at the end of each synchronous
step (a publishing batch, a request, a tick), so responses and notifications keep their order and a
batch of updates costs one system call per connection. Frames bypass websockets' per-message send
path for speed (compression is off, so a text frame is just a header and the payload).

Book notifications go through `send_book`, which applies pending book faults and records, per
channel, (change_id, prev_change_id, send_ns) where send_ns is the wall clock right before the
first subscriber's buffer was written to its socket (0 when no subscriber got it). A session whose unsent data exceeds
`send_buffer_limit` is reset (a slow consumer), and counted.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

from feeder.sim.channels import ChannelSpec, parse_channel
from feeder.sim.clock import SimClock, wall_ms
from feeder.sim.faults import corrupt, phantom
from feeder.sim.feeds import (
    Feed,
    Grouped,
    IntervalBook,
    Quote,
    RawBook,
    Ticker,
    Trades,
    UserFeed,
    user_trade_items,
)
from feeder.sim.instruments import Instrument
from feeder.sim.market import BookChange, Market, TradePrint
from feeder.sim.matching import Order
from feeder.sim.notices import Index, InstrumentStates, MarkPrice, PlatformState
from feeder.sim.rpc import RpcError
from feeder.sim.session import Session, text_frame
from feeder.sim.truth import TruthLog

FEEDS: dict[str, type[Feed]] = {
    "grouped": Grouped,
    "quote": Quote,
    "ticker": Ticker,
    "trades": Trades,
    "index": Index,
    "markprice": MarkPrice,
    "states": InstrumentStates,
    "platform": PlatformState,
    "orders": UserFeed,
    "user_trades": UserFeed,
}


class Hub:
    def __init__(
        self, market: Market, clock: SimClock, send_buffer_limit: int, sent_window: int,
        truth_log: TruthLog | None,
    ):  # fmt: skip
        self.market = market
        self.sim_clock = clock
        self.send_buffer_limit = send_buffer_limit
        self.sent_window = max(256, sent_window // max(1, len(market.active)))  # per book channel
        self.truth_log = truth_log
        self.sessions: dict[int, Session] = {}
        self.feeds: dict[str, Feed] = {}
        self.by_inst: list[list[Feed]] = [[] for _ in market.states]
        self.tick_feeds: list[Feed] = []
        self.index_feeds: list[Feed] = []
        self.user_feeds: list[UserFeed] = []
        self.state_feeds: list[InstrumentStates] = []
        self.platform_feeds: list[PlatformState] = []
        self.dirty: list[Session] = []
        self.counters: Counter[str] = Counter()
        self.published: Counter[str] = Counter()  # totals per channel, kept after a feed goes away
        self.clock = time.monotonic()  # monotonic time of the current step (stall deadlines)

    def now_ms(self) -> int:
        """The exchange's time (simulated: see clock.py)."""
        return self.sim_clock.now(wall_ms())

    # --- subscriptions -----------------------------------------------------------------------------

    def check_subscribe(self, s: Session, names: list[Any]) -> list[ChannelSpec]:
        """The channels of a subscribe request that will be subscribed; 13778 for raw unauthenticated."""
        specs = []
        for name in names:
            spec = parse_channel(name, self.market.catalogue.live)
            if spec is None or (spec.private and s.grant is None):
                continue
            if spec.raw and s.grant is None:
                raise RpcError(13778)
            specs.append(spec)
        return list({spec.name: spec for spec in specs}.values())

    def subscribe(self, s: Session, specs: list[ChannelSpec]) -> None:
        for spec in specs:
            if spec.name in s.subs:
                continue
            feed = self.feeds.get(spec.name) or self._create(spec)
            s.subs.add(spec.name)
            feed.add(s)

    def unsubscribe(self, s: Session, names: Iterable[str]) -> list[str]:
        removed = []
        for name in names:
            if name in s.subs:
                s.subs.discard(name)
                feed = self.feeds[name]
                feed.remove(s)
                if not feed.subs:
                    self._drop(feed)
                removed.append(name)
        return removed

    def _create(self, spec: ChannelSpec) -> Feed:
        if spec.kind == "book":
            cls: type[Feed] = RawBook if spec.interval == "raw" else IntervalBook
        else:
            cls = FEEDS[spec.kind]
        feed = cls(spec, self, self.sent_window)
        self.feeds[spec.name] = feed
        for registry in self._registries(feed):
            registry.append(feed)
        return feed

    def _registries(self, feed: Feed) -> list[list[Any]]:
        """The lists that hold `feed`: each one of feeds of the kind that the checks here found."""
        out: list[list[Any]] = []
        if isinstance(feed, UserFeed):
            out.append(self.user_feeds)
        elif isinstance(feed, InstrumentStates):
            out.append(self.state_feeds)
        elif isinstance(feed, PlatformState):
            out.append(self.platform_feeds)
        elif feed.spec.instrument is not None:
            out.append(self.by_inst[feed.spec.instrument])
        if feed.interval_driven:
            out.append(self.tick_feeds)
        if feed.index_driven:
            out.append(self.index_feeds)
        return out

    def _drop(self, feed: Feed) -> None:
        del self.feeds[feed.name]
        self.published[feed.name] += feed.published
        for registry in self._registries(feed):
            registry.remove(feed)

    # --- instruments coming and going ---------------------------------------------------------------

    def add_instrument(self) -> None:
        """Room for the feeds of the instrument the market just listed."""
        self.by_inst.append([])

    def instrument_state(self, inst: Instrument, state: str, ts_ms: int) -> None:
        for feed in self.state_feeds:
            feed.on_state(inst, state, ts_ms)

    def platform(self, data: dict[str, Any]) -> None:
        for feed in self.platform_feeds:
            feed.on_platform(data)

    def final_ticker(self, index: int, ts_ms: int) -> None:
        """The last ticker of an instrument out of trading (state "closed"), on every ticker channel."""
        for feed in self.by_inst[index]:
            if isinstance(feed, Ticker):
                feed.on_index(ts_ms)

    def forget_instrument(self, index: int, ts_ms: int) -> None:
        """A terminated instrument: its channels end (aggregated ones send their last interval first)."""
        for feed in list(self.by_inst[index]):
            if feed.interval_driven:
                feed.on_tick(ts_ms)
            for s in list(feed.subs):
                s.subs.discard(feed.name)
                s.book_faults.pop(index, None)
                s.held.pop(index, None)
            feed.subs.clear()
            self._drop(feed)

    def add_session(self, s: Session) -> None:
        self.sessions[s.id] = s
        self.counters["connections_total"] += 1

    def remove_session(self, s: Session) -> None:
        self.unsubscribe(s, list(s.subs))
        self.sessions.pop(s.id, None)
        s.out.clear()
        self._stamp(s, 0)

    # --- publishing --------------------------------------------------------------------------------

    def publish(self, changes: list[BookChange]) -> None:
        by_inst = self.by_inst
        for change in changes:
            feeds = by_inst[change.inst]
            if feeds:
                for feed in feeds:
                    feed.on_change(change)

    def tick(self, ts_ms: int) -> None:
        for feed in self.tick_feeds:
            feed.on_tick(ts_ms)

    def index_tick(self, ts_ms: int) -> None:
        for feed in self.index_feeds:
            feed.on_index(ts_ms)

    def user_events(self, orders: list[Order], prints: list[TradePrint]) -> None:
        """Order updates and user trades to the accounts' user.orders / user.trades subscribers."""
        if not self.user_feeds:
            return
        for feed in self.user_feeds:
            feed.on_orders(orders)
        accounts = {o.account for o in orders} | {
            o.account for tp in prints for o in (tp.taker, tp.maker) if o is not None
        }
        for account in accounts:
            for inst in {tp.inst for tp in prints}:
                st = self.market.states[inst]
                items = user_trade_items(
                    st,
                    [tp for tp in prints if tp.inst == inst],
                    account,
                    self.market.index_price(st.inst.base),
                )
                for feed in self.user_feeds:
                    feed.on_user_trades(account, inst, items)

    # --- the frame path ----------------------------------------------------------------------------

    def queue(self, s: Session, frame: bytes) -> bool:
        """Buffer a frame for `s`; False when it was discarded (stalled or closing session)."""
        if s.closing:
            return False
        if s.stalled_until is not None and s.stalled(self.clock):
            s.dropped += 1
            return False
        s.out.append(frame)
        if not s.in_dirty:
            s.in_dirty = True
            self.dirty.append(s)
        return True

    def reply(self, s: Session, payload: bytes) -> None:
        self.queue(s, text_frame(payload))

    def send_book(
        self, feed: Feed, targets: list[Session], data: dict[str, Any], change_id: int, prev: int
    ) -> None:
        """A book notification to `targets`, through their pending book faults; recorded for latency."""
        inst = feed.spec.instrument
        frame = feed.frame(data)
        stamped = False
        for s in targets:
            if s.book_faults or s.held:
                # ignore: only book feeds send books, and a book feed has an instrument
                sent = self._faulty(s, feed, inst, data, frame)  # type: ignore[arg-type]
            else:
                sent = self.queue(s, frame)
            if sent and not stamped:
                stamped = True
                s.stamps.append((feed, change_id, prev))  # recorded with its send time at flush
        feed.published += 1
        if not stamped:
            feed.sent.append((change_id, prev, 0))

    def _faulty(self, s: Session, feed: Feed, inst: int, data: dict[str, Any], frame: bytes) -> bool:
        held = s.held.pop(inst, None)
        kinds = s.book_faults.get(inst)
        if not kinds:
            sent = self.queue(s, frame)
            if held is not None:
                self.queue(s, held)
            return sent
        kind = kinds.popleft()
        if not kinds:
            del s.book_faults[inst]
        self.counters[f"fault_{kind}_applied"] += 1
        if held is not None:
            s.held[inst] = held
        if kind == "gap":
            return False
        if kind == "reorder":
            s.held[inst] = frame
            return False
        if kind == "duplicate":
            self.queue(s, frame)
            return self.queue(s, frame)
        if kind in ("phantom", "phantom_cross"):
            st = self.market.states[inst]
            return self.queue(s, text_frame(phantom(feed.name, data, st, kind == "phantom_cross")))
        return self.queue(s, text_frame(corrupt(kind, feed.name, data)))

    def flush(self) -> None:
        """Write every dirty session's buffer to its socket (one write each)."""
        dirty = self.dirty
        if not dirty:
            return
        self.dirty = []
        for s in dirty:
            s.in_dirty = False
            out = s.out
            if not out:
                if s.stamps:
                    self._stamp(s, 0)
                continue
            n = len(out)
            data = b"".join(out) if n > 1 else out[0]
            out.clear()
            ns = 0
            transport = s.conn.transport
            if s.is_open and transport.get_write_buffer_size() > self.send_buffer_limit:
                self.counters["slow_consumer_resets"] += 1
                transport.abort()
            elif s.is_open:
                ns = time.time_ns()
                transport.write(data)
                s.sent += n
            if s.stamps:
                self._stamp(s, ns)

    def _stamp(self, s: Session, ns: int) -> None:
        """Record the book notifications `s` was the first to get, with their send time (0: unsent)."""
        log = self.truth_log
        for feed, change_id, prev in s.stamps:
            feed.sent.append((change_id, prev, ns))
            if log is not None and ns:
                log.sent(feed.name, change_id, prev, ns)
        s.stamps.clear()

    # --- views -------------------------------------------------------------------------------------

    def sent_log(self, channel: str) -> list[list[int]]:
        feed = self.feeds.get(channel)
        return [list(r) for r in feed.sent] if feed is not None else []

    def stats(self) -> dict[str, Any]:
        published = Counter(self.published)
        for name, feed in self.feeds.items():
            published[name] += feed.published
        return {
            "published": dict(published),
            "subscribers": {name: len(feed.subs) for name, feed in self.feeds.items()},
            "connections": len(self.sessions),
            "counters": dict(self.counters),
        }
