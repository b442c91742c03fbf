"""The simulated exchange's state: every instrument's book, walk, orders, trades and ground truth.

Pure (no I/O except appending to the optional truth log). Every mutation of a book goes through
`_commit`, which gives it the instrument's next change_id (strictly increasing, random jumps of
1-4), records it in the truth window and returns a `BookChange` for the publisher. `generate(n)`
makes n random-walk changes spread uniformly over the active instruments (none on a currency that
is locked); order operations (`place`, `edit`, `cancel`) return the order, the change (if the book
moved) and the trades. Listings come in through `add`; `end` takes an instrument out of trading
(settled or closed): its user orders are cancelled and its book emptied by one last change.
`reprice` moves the option model (marks.py) to a new time and index and points every option's
walk at its model value, so books follow the marks.

Determinism: one seeded generator drives every walk, so the sequence of changes depends only on
the seed and the sequence of calls (generate in any batch sizes, orders), never on timing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from random import Random
from typing import Any

from feeder.sim.book import Book, Entry
from feeder.sim.catalogue import Catalogue
from feeder.sim.instruments import Instrument
from feeder.sim.marks import Marks, Quote
from feeder.sim.matching import Fill, Matcher, Order, Outcome, merge_entry
from feeder.sim.rpc import RpcError
from feeder.sim.truth import LEVELS, TruthLog, TruthWindow, book_hash, top_levels
from feeder.sim.walk import Walk


@dataclass(slots=True)
class TradePrint:
    inst: int
    trade_id: str
    trade_seq: int
    ts_ms: int
    price: int
    lots: int
    is_buy: bool  # aggressor side
    tick_direction: int
    taker: Order | None = None
    maker: Order | None = None


@dataclass(slots=True)
class BookChange:
    inst: int
    change_id: int
    prev: int
    ts_ms: int
    bids: list[Entry]
    asks: list[Entry]
    trades: list[TradePrint] = field(default_factory=list)


class InstrumentState:
    """One instrument's live state."""

    __slots__ = (
        "book", "book_state", "change_id", "changes", "high", "index", "inst", "ivs", "last_trade", "low", "matcher", "model",
        "open_interest", "rng", "settlement", "status", "tick_direction", "trade_seq", "trades", "truth",
        "volume_lots", "walk",
    )  # fmt: skip

    def __init__(self, index: int, inst: Instrument, seed: int, window: int, rng: Random):
        self.index, self.inst = index, inst
        self.rng = rng  # shared by all instruments: one generator stays in cache, a thousand would not
        self.book = Book()
        depth = 150 if inst.is_perpetual else 60 if inst.kind == "future" else 15
        lot_mean = 30000 / inst.lot if inst.kind == "future" else 30.0
        ref = round(inst.ref_price / inst.tick)
        shaped = partial(
            Walk, self.book, grid=inst.grid, depth=depth, lot_mean=lot_mean, ref=ref, ceiling=inst.ceiling
        )
        self.walk = shaped(rng)
        own = Random(f"{seed}:{inst.name}")  # the initial book depends on the instrument alone
        shaped(own).seed()
        self.matcher = Matcher(self.book, self._step_at)
        self.change_id = own.randrange(10**9, 10**10)
        self.changes = 0
        self.truth = TruthWindow(window, self.change_id, self.book.bids.lots, self.book.asks.lots)
        self.trade_seq = 0
        self.last_trade: int | None = None
        self.tick_direction = 0
        self.trades: list[TradePrint] = []  # recent, for get_last_trades_by_instrument
        self.volume_lots = 0
        self.high: int | None = None
        self.low: int | None = None
        self.open_interest = own.randrange(10**6, 10**7) if inst.kind == "future" else own.randrange(10, 5000)
        self.status = "started"  # started | settled | closed | terminated (lifecycle.py)
        self.book_state = "open"  # what its ticker says
        self.settlement: float | None = None  # the delivery price, once settled
        self.model: tuple[int, Quote] | None = None  # (epoch, Quote): the option model's cache (marks.py)
        self.ivs: dict[float, float] = {}

    @property
    def trading(self) -> bool:
        return self.status == "started"

    def _step_at(self, price: int) -> int:
        inst = self.inst
        return inst.coarse if inst.step_above is not None and inst.px(price) > inst.step_above else 1

    def mid_ticks(self) -> float:
        bid, ask = self.book.bids.best(), self.book.asks.best()
        if bid is None or ask is None:
            return float(bid or ask or round(self.inst.ref_price / self.inst.tick))
        return (bid + ask) / 2

    def top(self, n: int = LEVELS) -> tuple[list[list[float]], list[list[float]]]:
        inst = self.inst
        bids = [[inst.px(p), inst.amt(q)] for p, q in self.book.bids.top(n)]
        asks = [[inst.px(p), inst.amt(q)] for p, q in self.book.asks.top(n)]
        return bids, asks


class Market:
    """All instruments, the order registry, and the change/trade numbering."""

    def __init__(self, catalogue: Catalogue, seed: int, truth_window: int, truth_log: TruthLog | None = None):
        self.catalogue = catalogue
        self.seed = seed
        self.rng = Random(f"{seed}:market")
        active = set(catalogue.active)
        self.window = max(64, truth_window // len(active))  # quiet instruments change only with user orders
        self.states = [
            InstrumentState(i, inst, seed, self.window if i in active else 64, self.rng)
            for i, inst in enumerate(catalogue.instruments)
        ]
        self.active = [self.states[i] for i in catalogue.active]
        self.chooser = self.rng
        self.truth_log = truth_log
        self.orders: dict[str, Order] = {}
        self._order_seq = 0
        self._trade_seq = {"BTC": 0, "ETH": 0}
        self.changes = 0
        self.locked: set[str] = set()  # currencies whose books do not move (platform_state lock)
        self.marks = Marks(lambda name: name in catalogue.live)

    # --- listings ----------------------------------------------------------------------------------

    def add(self, inst: Instrument) -> InstrumentState:
        """List `inst`: a new catalogue entry, its book seeded, active when the selection says so."""
        inst = self.catalogue.add(inst)
        active = self.catalogue.selection(inst.name)
        st = InstrumentState(len(self.states), inst, self.seed, self.window if active else 64, self.rng)
        self.states.append(st)
        if active:
            self.active.append(st)
        return st

    def end(
        self, st: InstrumentState, status: str, settlement: float | None, ts_ms: int
    ) -> tuple[list[Order], BookChange | None]:
        """Stop trading `st` (settled or closed): the orders cancelled and the last change (an empty book)."""
        st.status, st.settlement, st.model = status, settlement, None
        if st in self.active:
            self.active.remove(st)
        orders = [o for o in self.orders.values() if o.inst == st.index and o.state == "open"]
        bids: list[Entry] = []
        asks: list[Entry] = []
        for order in orders:
            outcome = st.matcher.cancel(order, "settlement")
            order.updated_ms = ts_ms
            for entry in outcome.bids:
                merge_entry(bids, entry)
            for entry in outcome.asks:
                merge_entry(asks, entry)
        for side, out in ((st.book.bids, bids), (st.book.asks, asks)):
            for price in list(side.prices):
                change = side.set(price, 0)
                if change is not None:
                    merge_entry(out, change)
        return orders, (self._commit(st, bids, asks, [], ts_ms) if bids or asks else None)

    def reprice(self, now_ms: int) -> None:
        """The option model at `now_ms` and the current index; every moving option's walk follows it."""
        self.marks.reprice(now_ms, {base: self.index_price(base) for base in ("BTC", "ETH")})
        for st in self.active:
            if st.inst.kind == "option":
                st.walk.retarget(round(self.marks.quote(st).mark / st.inst.tick))

    # --- the random walk ---------------------------------------------------------------------------

    def generate(self, n: int, ts_ms: int, only: int | None = None) -> list[BookChange]:
        """n random-walk book changes over the active instruments (or only instrument `only`)."""
        out: list[BookChange] = []
        states, rand, locked = self.active, self.chooser.random, self.locked
        count = len(states)
        if not count and only is None:
            return out
        for _ in range(n):
            st = self.states[only] if only is not None else states[int(rand() * count)]
            if locked and st.inst.base in locked:
                continue
            bids, asks, trade = st.walk.step()
            if not bids and not asks:
                continue
            prints = [self._print(st, trade[0], trade[1], trade[2], ts_ms)] if trade else []
            out.append(self._commit(st, bids, asks, prints, ts_ms))
        return out

    def _commit(
        self, st: InstrumentState, bids: list[Entry], asks: list[Entry], prints: list[TradePrint], ts_ms: int
    ) -> BookChange:
        prev = st.change_id
        st.change_id = cid = prev + 1 + int(st.rng.random() * 4)
        truth = st.truth
        truth.changes.append((cid, tuple(bids), tuple(asks)))  # tuples of atomics: not GC-tracked
        truth.count += 1
        if not truth.count % truth.every:
            truth.checkpoint(cid, st.book.bids.lots, st.book.asks.lots)
        st.changes += 1
        self.changes += 1
        if self.truth_log is not None:
            self.truth_log.change(st.inst.name, cid, prev, ts_ms, self.hash_now(st))
        return BookChange(st.index, cid, prev, ts_ms, bids, asks, prints)

    def _print(
        self,
        st: InstrumentState,
        price: int,
        lots: int,
        is_buy: bool,
        ts_ms: int,
        taker: Order | None = None,
        maker: Order | None = None,
    ) -> TradePrint:
        base = st.inst.base
        self._trade_seq[base] += 1
        n = self._trade_seq[base]
        st.trade_seq += 1
        if st.last_trade is not None and price != st.last_trade:
            st.tick_direction = 0 if price > st.last_trade else 2
        elif st.last_trade is not None:
            st.tick_direction = 1 if st.tick_direction in (0, 1) else 3
        st.last_trade = price
        st.volume_lots += lots
        st.high = price if st.high is None else max(st.high, price)
        st.low = price if st.low is None else min(st.low, price)
        trade_id = str(n) if base == "BTC" else f"{base}-{n}"
        tp = TradePrint(
            st.index, trade_id, st.trade_seq, ts_ms, price, lots, is_buy, st.tick_direction, taker, maker
        )
        st.trades.append(tp)
        if self.truth_log is not None:
            self.truth_log.trade(st.inst.name, st.trade_seq, st.inst.amt(lots))
        if len(st.trades) > 200:
            del st.trades[:100]
        return tp

    def index_price(self, base: str) -> float:
        """The deribit_price_index of a currency: its perpetual's mid, a hair below (as a basis)."""
        st = self.states[self.catalogue.by_name[f"{base}-PERPETUAL"]]
        return round(st.mid_ticks() * st.inst.tick * 0.9998, 2)

    def hash_now(self, st: InstrumentState) -> int:
        bids, asks = st.top()
        return book_hash(
            [b[0] for b in bids], [b[1] for b in bids], [a[0] for a in asks], [a[1] for a in asks]
        )

    # --- ground truth ------------------------------------------------------------------------------

    def truth(self, inst: int, change_ids: list[int]) -> list[dict[str, Any]]:
        """The true top-10 book after each change_id (TruthError when outside the window)."""
        st = self.states[inst]
        out = []
        for cid, bids, asks in st.truth.books(change_ids):
            b = [[st.inst.px(p), st.inst.amt(q)] for p, q in top_levels(bids, True)]
            a = [[st.inst.px(p), st.inst.amt(q)] for p, q in top_levels(asks, False)]
            h = book_hash([x[0] for x in b], [x[1] for x in b], [x[0] for x in a], [x[1] for x in a])
            out.append(
                {
                    "instrument": st.inst.name,
                    "instrument_id": st.inst.instrument_id,
                    "change_id": cid,
                    "bids": b,
                    "asks": a,
                    "hash": h,
                }
            )
        return out

    # --- orders ------------------------------------------------------------------------------------

    def new_order_id(self, base: str) -> str:
        self._order_seq += 1
        return f"{self._order_seq + 10**9}" if base == "BTC" else f"{base}-{self._order_seq + 10**9}"

    def place(self, order: Order, ts_ms: int) -> tuple[BookChange | None, list[TradePrint]]:
        st = self.states[order.inst]
        order.updated_ms = ts_ms
        outcome = st.matcher.place(order)
        self.orders[order.order_id] = order
        return self._settle(st, order, outcome, ts_ms)

    def edit(
        self, order: Order, lots: int, price: int, ts_ms: int
    ) -> tuple[BookChange | None, list[TradePrint]]:
        st = self.states[order.inst]
        outcome = st.matcher.edit(order, lots, price)
        order.updated_ms = ts_ms
        return self._settle(st, order, outcome, ts_ms)

    def cancel(self, order: Order, reason: str, ts_ms: int) -> BookChange | None:
        if order.state != "open":
            raise RpcError(11044, {"reason": f"order {order.order_id} is {order.state}"})
        st = self.states[order.inst]
        outcome = st.matcher.cancel(order, reason)
        order.updated_ms = ts_ms
        change, _ = self._settle(st, order, outcome, ts_ms)
        return change

    def open_orders(self, account: str) -> list[Order]:
        return [o for o in self.orders.values() if o.account == account and o.state == "open"]

    def _settle(
        self, st: InstrumentState, order: Order, outcome: Outcome, ts_ms: int
    ) -> tuple[BookChange | None, list[TradePrint]]:
        prints = [self._fill_print(st, order, f, ts_ms) for f in outcome.fills]
        for fill in outcome.fills:
            if fill.maker is not None:
                fill.maker.updated_ms = ts_ms
        if not outcome.bids and not outcome.asks:
            return None, prints
        return self._commit(st, outcome.bids, outcome.asks, prints, ts_ms), prints

    def _fill_print(self, st: InstrumentState, order: Order, fill: Fill, ts_ms: int) -> TradePrint:
        return self._print(st, fill.price, fill.lots, order.is_buy, ts_ms, taker=order, maker=fill.maker)
