"""One publisher per subscribed channel name, turning market events into notifications.

A feed exists while somebody subscribes to its channel. It reacts to book changes (`on_change`),
to the 100 ms clock (`on_tick`, for aggregated intervals), to the index clock (`on_index`, once a
second: option tickers, whose model moves then) and to user order/trade events, and hands
encoded frames to the hub. This module holds the feeds of one instrument and the user's own;
channels about a whole market (index, marks, instrument states, platform state) are in
notices.py. Interval book feeds keep Deribit's chaining: each message carries the last change_id
of its interval and the previous message's change_id as `prev_change_id`; a new subscriber gets
its snapshot at the next tick, so the chain it sees is unbroken. The truth at any sent change_id is the book after that change. `agg2` is
aggregated on the same 100 ms clock (its period is not documented by Deribit).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

import orjson

from feeder.sim import messages as msg
from feeder.sim.book import Entry
from feeder.sim.channels import ChannelSpec
from feeder.sim.market import BookChange, InstrumentState, TradePrint
from feeder.sim.matching import Order
from feeder.sim.session import Session, text_frame

if TYPE_CHECKING:
    from feeder.sim.hub import Hub


class Feed:
    """Base: the subscribers of one channel and what was published on it."""

    interval_driven = False
    index_driven = False

    def __init__(self, spec: ChannelSpec, hub: Hub, sent_window: int):
        self.name, self.spec, self.hub = spec.name, spec, hub
        self.subs: list[Session] = []
        self.published = 0
        self.sent: deque[tuple[int, int, int]] = deque(maxlen=sent_window)  # (change_id, prev, send_ns)
        self.envelope = msg.envelope(spec.name)
        self._state = hub.market.states[spec.instrument] if spec.instrument is not None else None

    @property
    def state(self) -> InstrumentState:
        assert self._state is not None, "a feed without an instrument"
        return self._state

    def add(self, s: Session) -> None:
        self.subs.append(s)
        self.on_add(s)

    def remove(self, s: Session) -> None:
        self.subs.remove(s)

    def frame(self, data: object) -> bytes:
        return text_frame(self.envelope + orjson.dumps(data) + b"}}")

    def broadcast(self, data: object) -> None:
        frame = self.frame(data)
        for s in self.subs:
            self.hub.queue(s, frame)
        self.published += 1

    def on_add(self, s: Session) -> None:
        pass

    def on_change(self, change: BookChange) -> None:
        pass

    def on_tick(self, ts_ms: int) -> None:
        pass

    def on_index(self, ts_ms: int) -> None:
        pass


class RawBook(Feed):
    """book.{inst}.raw: the snapshot on subscribe, then every change as it happens."""

    def on_add(self, s: Session) -> None:
        st = self.state
        data = msg.book_snapshot(st, self.hub.now_ms())
        self.hub.send_book(self, [s], data, st.change_id, 0)

    def on_change(self, change: BookChange) -> None:
        # ignore: a book feed has an instrument (`state` checks that, at the cost of a call per change)
        data = msg.book_change(self._state.inst, change)  # type: ignore[union-attr]
        self.hub.send_book(self, self.subs, data, change.change_id, change.prev)


class IntervalBook(Feed):
    """book.{inst}.100ms / agg2: the net change of each touched level per tick."""

    interval_driven = True

    def __init__(self, spec: ChannelSpec, hub: Hub, sent_window: int):
        super().__init__(spec, hub, sent_window)
        self.touched: dict[tuple[bool, int], bool] = {}  # (is_bid, price) -> existed at interval start
        self.pending: list[Session] = []
        self.last = self.state.change_id

    def on_add(self, s: Session) -> None:
        self.pending.append(s)

    def remove(self, s: Session) -> None:
        super().remove(s)
        if s in self.pending:
            self.pending.remove(s)

    def on_change(self, change: BookChange) -> None:
        touched = self.touched
        for action, price, _ in change.bids:
            touched.setdefault((True, price), action != "new")
        for action, price, _ in change.asks:
            touched.setdefault((False, price), action != "new")

    def on_tick(self, ts_ms: int) -> None:
        st = self.state
        live = [s for s in self.subs if s not in self.pending] if self.pending else self.subs
        if self.touched and live:
            bids, asks = self._net(st)
            if bids or asks:
                data = msg.book_aggregate(st.inst, ts_ms, self.last, st.change_id, bids, asks)
                self.hub.send_book(self, live, data, st.change_id, self.last)
        self.touched.clear()
        if self.pending:
            data = msg.book_snapshot(st, ts_ms)
            self.hub.send_book(self, self.pending, data, st.change_id, 0)
            self.pending.clear()
        self.last = st.change_id

    def _net(self, st: InstrumentState) -> tuple[list[Entry], list[Entry]]:
        bids: list[Entry] = []
        asks: list[Entry] = []
        for (is_bid, price), existed in self.touched.items():
            lots = (st.book.bids if is_bid else st.book.asks).lots.get(price, 0)
            out = bids if is_bid else asks
            if lots:
                out.append(("change" if existed else "new", price, lots))
            elif existed:
                out.append(("delete", price, 0))
        bids.sort(key=lambda e: -e[1])
        asks.sort(key=lambda e: e[1])
        return bids, asks


class Grouped(Feed):
    """book.{inst}.{group}.{depth}.{interval}: the whole top `depth`, grouped, when it changed."""

    def __init__(self, spec: ChannelSpec, hub: Hub, sent_window: int):
        super().__init__(spec, hub, sent_window)
        self.interval_driven = spec.interval != "raw"
        self.last: tuple[str, str] | None = None  # the last top published, as text
        self.dirty = False

    def _data(self, ts_ms: int) -> dict[str, Any]:
        return msg.grouped(self.state, self.spec.group, self.spec.depth, ts_ms)

    def on_add(self, s: Session) -> None:
        self.hub.queue(s, self.frame(self._data(self.hub.now_ms())))

    def on_change(self, change: BookChange) -> None:
        if self.interval_driven:
            self.dirty = True
        else:
            self._publish(change.ts_ms)

    def on_tick(self, ts_ms: int) -> None:
        if self.dirty:
            self.dirty = False
            self._publish(ts_ms)

    def _publish(self, ts_ms: int) -> None:
        data = self._data(ts_ms)
        key = (str(data["bids"]), str(data["asks"]))
        if key != self.last:
            self.last = key
            self.broadcast(data)


class Quote(Feed):
    """quote.{inst}: best bid/ask whenever the touch changes."""

    def __init__(self, spec: ChannelSpec, hub: Hub, sent_window: int):
        super().__init__(spec, hub, sent_window)
        self.last: tuple[int | None, ...] | None = None

    def _touch(self) -> tuple[int | None, ...]:
        book = self.state.book
        bid, ask = book.bids.best(), book.asks.best()
        # ignore: an empty side's best is None, and so are its lots (`get(None)`), as a quote says it
        return bid, book.bids.lots.get(bid), ask, book.asks.lots.get(ask)  # type: ignore[arg-type]

    def on_add(self, s: Session) -> None:
        self.hub.queue(s, self.frame(msg.quote(self.state, self.hub.now_ms())))

    def on_change(self, change: BookChange) -> None:
        touch = self._touch()
        if touch != self.last:
            self.last = touch
            self.broadcast(msg.quote(self.state, change.ts_ms))


class Ticker(Quote):
    """ticker.{inst}.{interval}: raw on every touch change or trade; aggregated once per tick."""

    def __init__(self, spec: ChannelSpec, hub: Hub, sent_window: int):
        super().__init__(spec, hub, sent_window)
        self.interval_driven = spec.interval != "raw"
        self.index_driven = self.state.inst.kind == "option"
        self.dirty = False

    def _ticker(self, ts_ms: int) -> dict[str, Any]:
        st = self.state
        market = self.hub.market
        return msg.ticker(st, market.index_price(st.inst.base), ts_ms, market.marks)

    def on_index(self, ts_ms: int) -> None:
        """An option's marks, greeks and IVs moved with the model."""
        if self.interval_driven:
            self.dirty = True
        else:
            self.broadcast(self._ticker(ts_ms))

    def on_add(self, s: Session) -> None:
        self.hub.queue(s, self.frame(self._ticker(self.hub.now_ms())))

    def on_change(self, change: BookChange) -> None:
        touch = self._touch()
        if (touch == self.last and not change.trades) or not self.state.trading:
            return  # the last ticker of an instrument out of trading comes from Hub.final_ticker
        self.last = touch
        if self.interval_driven:
            self.dirty = True
        else:
            self.broadcast(self._ticker(change.ts_ms))

    def on_tick(self, ts_ms: int) -> None:
        if self.dirty:
            self.dirty = False
            self.broadcast(self._ticker(ts_ms))


class Trades(Feed):
    """trades.{inst}.{interval}: lists of public trades."""

    def __init__(self, spec: ChannelSpec, hub: Hub, sent_window: int):
        super().__init__(spec, hub, sent_window)
        self.interval_driven = spec.interval != "raw"
        self.batch: list[dict[str, Any]] = []

    def on_change(self, change: BookChange) -> None:
        if not change.trades:
            return
        st = self.state
        index = self.hub.market.index_price(st.inst.base)
        trades = [msg.public_trade(st, tp, index, self.hub.market.marks) for tp in change.trades]
        if self.interval_driven:
            self.batch.extend(trades)
        else:
            self.broadcast(trades)

    def on_tick(self, ts_ms: int) -> None:
        if self.batch:
            self.broadcast(self.batch)
            self.batch = []


class UserFeed(Feed):
    """user.orders.* / user.trades.*: events of the subscriber's own account only."""

    def __init__(self, spec: ChannelSpec, hub: Hub, sent_window: int):
        super().__init__(spec, hub, sent_window)
        self.interval_driven = spec.interval != "raw"
        self.batches: dict[Session, list[dict[str, Any]]] = {}

    def matches(self, inst: int) -> bool:
        spec = self.spec
        if spec.instrument is not None:
            return spec.instrument == inst
        instrument = self.hub.market.states[inst].inst
        return spec.currency in ("any", instrument.base) and spec.inst_kind in ("any", instrument.kind)

    def deliver(self, account: str, items: list[dict[str, Any]], single: bool) -> None:
        """Send `items` to this account's subscribers (one object each when `single` and raw)."""
        for s in self.subs:
            if s.account != account:
                continue
            if self.interval_driven:
                self.batches.setdefault(s, []).extend(items)
            elif single:
                for item in items:
                    self.hub.queue(s, self.frame(item))
            else:
                self.hub.queue(s, self.frame(items))
            self.published += 1

    def remove(self, s: Session) -> None:
        super().remove(s)
        self.batches.pop(s, None)

    def on_tick(self, ts_ms: int) -> None:
        for s, items in self.batches.items():
            self.hub.queue(s, self.frame(items))
        self.batches.clear()

    def on_orders(self, orders: list[Order]) -> None:
        if self.spec.kind != "orders":
            return
        for order in orders:
            if self.matches(order.inst):
                inst = self.hub.market.states[order.inst].inst
                self.deliver(order.account, [msg.order_object(inst, order)], single=True)

    def on_user_trades(self, account: str, inst: int, trades: list[dict[str, Any]]) -> None:
        if self.spec.kind == "user_trades" and trades and self.matches(inst):
            self.deliver(account, trades, single=False)


def user_trade_items(
    st: InstrumentState, prints: list[TradePrint], account: str, index: float
) -> list[dict[str, Any]]:
    """The user trades of `account` among `prints` (as taker and/or maker)."""
    out = []
    for tp in prints:
        for order in (tp.taker, tp.maker):
            if order is not None and order.account == account:
                out.append(msg.user_trade(st, tp, order, index))
    return out
