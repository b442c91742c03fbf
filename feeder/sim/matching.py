"""Price-time matching of user orders against one instrument's simulated book.

Pure: `Matcher` mutates a `Book` and its own queues of resting user orders and returns what
happened (fills, book entries); it never sends anything. At a price level the anonymous
liquidity of the random walk was there first, so a taker consumes it before the resting user
orders, which fill in time order. Users may trade with themselves (no self-trade prevention).

Rules it keeps: the book never crosses (a crossing order trades first, its rest is booked or
cancelled); `Side.user` always equals the sum of the resting user orders at each price.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from feeder.sim.book import Book, Entry, Side
from feeder.sim.rpc import RpcError, invalid

RESTING_TIFS = ("good_til_cancelled", "good_til_day")


@dataclass(slots=True, eq=False)
class Order:
    order_id: str
    account: str
    conn: int  # the connection that created it (cancel-on-disconnect)
    inst: int
    is_buy: bool
    price: int | None  # ticks; None for a market order
    lots: int
    label: str
    order_type: str
    tif: str
    post_only: bool
    reject_post_only: bool
    reduce_only: bool
    created_ms: int
    filled: int = 0
    value: int = 0  # sum of fill ticks * lots, for the average price
    state: str = "open"
    updated_ms: int = 0
    cancel_reason: str | None = None
    api: bool = True

    @property
    def remaining(self) -> int:
        return self.lots - self.filled


@dataclass(slots=True)
class Fill:
    price: int
    lots: int
    maker: Order | None  # None: anonymous liquidity of the random walk


@dataclass(slots=True)
class Outcome:
    """What one order operation did: the fills and the book entries per side."""

    fills: list[Fill] = field(default_factory=list)
    bids: list[Entry] = field(default_factory=list)
    asks: list[Entry] = field(default_factory=list)

    def entries(self, is_bid: bool) -> list[Entry]:
        return self.bids if is_bid else self.asks


class Matcher:
    """The resting user orders of one instrument and the operations on them."""

    def __init__(self, book: Book, step_at: Callable[[int], int]):
        self.book = book
        self.step_at = step_at  # price ticks -> tick step there (options are coarser above 0.005)
        self.queues: dict[tuple[bool, int], deque[Order]] = {}

    # --- placing ---------------------------------------------------------------------------------

    def place(self, order: Order) -> Outcome:
        """Match a new order, then book or cancel its rest according to its time in force."""
        out = Outcome()
        if order.price is not None:
            order.price = self._post_only_price(order, order.price)
        if order.tif == "fill_or_kill" and self._available(order) < order.lots:
            order.state, order.cancel_reason = "cancelled", "user_request"
            return out
        self._take(order, out)
        if order.remaining and order.price is not None and order.tif in RESTING_TIFS:
            self._rest(order, out)
        elif order.remaining:
            order.state = "cancelled" if order.filled < order.lots else "filled"
            order.cancel_reason = "user_request" if order.state == "cancelled" else None
        else:
            order.state = "filled"
        return out

    def _post_only_price(self, order: Order, price: int) -> int:
        """A post_only order that would cross is refused (reject_post_only) or moved just behind the best."""
        opposite = self.book.side(not order.is_buy)
        if not order.post_only or not opposite.crosses(price):
            return price
        if order.reject_post_only:
            raise RpcError(11054, {"reason": "post_only order would have crossed the book"})
        best = opposite.best()
        assert best is not None
        price = best - self.step_at(best) if order.is_buy else best + self.step_at(best)
        if price <= 0:
            raise invalid("price", "post_only price would be below the minimum tick")
        return price

    def _available(self, order: Order) -> int:
        opposite = self.book.side(not order.is_buy)
        total = 0
        for price, lots in opposite.levels():
            if order.price is not None and not _crosses(order, price):
                break
            total += lots
            if total >= order.lots:
                break
        return total

    def _take(self, order: Order, out: Outcome) -> None:
        opposite = self.book.side(not order.is_buy)
        while order.remaining:
            best = opposite.best()
            if best is None or (order.price is not None and not _crosses(order, best)):
                return
            self._take_level(order, opposite, best, out)

    def _take_level(self, order: Order, side: Side, price: int, out: Outcome) -> None:
        taken = min(side.anon(price), order.remaining)
        if taken:
            self._fill(order, None, price, taken, out)
        queue = self.queues.get((side.is_bid, price))
        while queue and order.remaining:
            maker = queue[0]
            lots = min(maker.remaining, order.remaining)
            self._fill(order, maker, price, lots, out)
            side.user[price] -= lots
            taken += lots
            if not maker.remaining:
                maker.state = "filled"
                queue.popleft()
        if queue is not None and not queue:
            del self.queues[(side.is_bid, price)]
            del side.user[price]
        entry = side.set(price, side.lots[price] - taken)
        if entry is not None:
            merge_entry(out.entries(side.is_bid), entry)

    def _fill(self, taker: Order, maker: Order | None, price: int, lots: int, out: Outcome) -> None:
        for order in (taker, maker):
            if order is not None:
                order.filled += lots
                order.value += price * lots
        out.fills.append(Fill(price, lots, maker))

    def _rest(self, order: Order, out: Outcome) -> None:
        side = self.book.side(order.is_buy)
        price = order.price
        assert price is not None
        self.queues.setdefault((order.is_buy, price), deque()).append(order)
        side.user[price] = side.user.get(price, 0) + order.remaining
        entry = side.set(price, side.lots.get(price, 0) + order.remaining)
        if entry is not None:
            merge_entry(out.entries(order.is_buy), entry)

    # --- changing -------------------------------------------------------------------------------

    def cancel(self, order: Order, reason: str) -> Outcome:
        """Take a resting order out of the book."""
        out = Outcome()
        self._unbook(order, out)
        order.state, order.cancel_reason = "cancelled", reason
        return out

    def edit(self, order: Order, lots: int, price: int) -> Outcome:
        """Change amount and/or price; priority is lost unless the amount only goes down."""
        if lots <= order.filled:
            raise invalid("amount", "must be more than the filled amount of the order")
        out = Outcome()
        price = self._post_only_price(order, price)  # before unbooking: a refusal leaves the order as it was
        if price == order.price and lots <= order.lots:
            side = self.book.side(order.is_buy)
            cut = order.lots - lots
            order.lots = lots
            side.user[price] -= cut
            entry = side.set(price, side.lots[price] - cut)
            if entry is not None:
                out.entries(order.is_buy).append(entry)
            return out
        self._unbook(order, out)
        order.lots, order.price = lots, price
        self._take(order, out)
        if order.remaining:
            self._rest(order, out)
        else:
            order.state = "filled"
        return out

    def _unbook(self, order: Order, out: Outcome) -> None:
        price = order.price
        assert price is not None
        side = self.book.side(order.is_buy)
        queue = self.queues[(order.is_buy, price)]
        queue.remove(order)
        if not queue:
            del self.queues[(order.is_buy, price)]
        side.user[price] -= order.remaining
        if not side.user[price]:
            del side.user[price]
        entry = side.set(price, side.lots[price] - order.remaining)
        if entry is not None:
            merge_entry(out.entries(order.is_buy), entry)


def _crosses(order: Order, price: int) -> bool:
    assert order.price is not None
    return price <= order.price if order.is_buy else price >= order.price


def merge_entry(entries: list[Entry], entry: Entry) -> None:
    """Keep one entry per price: merge a later mutation of the same price into the net effect."""
    for i, old in enumerate(entries):
        if old[1] == entry[1]:
            existed, exists = old[0] != "new", entry[0] != "delete"
            if existed:
                entries[i] = ("change" if exists else "delete", entry[1], entry[2])
            elif exists:
                entries[i] = ("new", entry[1], entry[2])
            else:
                del entries[i]
            return
    entries.append(entry)
