"""The random walk that moves a simulated book: one call, one book change.

Pure and seeded: the steps depend only on the generator's seed and on user orders, never on
timing. Each step resizes, adds or removes a level, prints a trade against the best level, or
shifts the touch by a tick (the mid random-walks with a mild pull back to the reference price,
which `retarget` moves). It keeps the book uncrossed, between `depth/2` and `depth` levels a side
where prices allow, every price between one grid step and `ceiling` (when given), and it only
moves anonymous liquidity: user orders are never touched (see book.py).

Hot path: sizes and level indexes come from one table of exponential deviates made once (a draw
is one `random()` of the instrument's own generator), and side internals are read directly.
"""

from __future__ import annotations

from random import Random

from feeder.sim.book import Book, Entry, Side

Trade = tuple[int, int, bool]  # (price ticks, lots, aggressor is a buyer)
TABLE = 4096
_table_rng = Random(20261125)
EXP = [_table_rng.expovariate(1.0) for _ in range(TABLE)]
INDEXES = [int(e / 0.35) for e in EXP]  # distance from the touch: geometric-like, mean ~2.9


class Walk:
    __slots__ = ("book", "depth", "grid", "lot_mean", "max_price", "min_price", "rand", "ref")

    def __init__(
        self, book: Book, rng: Random, *, grid: int, depth: int, lot_mean: float, ref: int,
        ceiling: int | None = None,
    ):  # fmt: skip
        self.book, self.grid, self.depth = book, grid, depth
        self.rand = rng.random
        self.min_price = grid
        self.max_price = ceiling if ceiling is not None else 1 << 62
        self.lot_mean = lot_mean
        self.ref = grid
        self.retarget(ref)

    def retarget(self, ref: int) -> None:
        """Pull the mid towards `ref` (ticks) from now on, kept a grid step inside the price range."""
        grid = self.grid
        self.ref = min(max(ref - ref % grid, 2 * grid), self.max_price - self.max_price % grid - grid)

    def seed(self) -> None:
        """Fill both sides around the reference price: dense near the touch, gappy further out."""
        for side, sign in ((self.book.bids, -1), (self.book.asks, 1)):
            price = self.ref
            while len(side.prices) < self.depth:
                price += sign * self.grid * (1 if len(side.prices) < 10 or self.rand() < 0.6 else 2)
                if not self.min_price <= price <= self.max_price:
                    break
                side.set(price, self._size())

    def step(self) -> tuple[list[Entry], list[Entry], Trade | None]:
        """One book change: (bid entries, ask entries, trade printed or None)."""
        bids: list[Entry] = []
        asks: list[Entry] = []
        book, low, high = self.book, self.depth // 2, self.depth
        for _ in range(8):
            trade = self._operate(bids, asks)
            if bids or asks:
                if not low <= len(book.bids.prices) <= high:
                    self._keep_depth(book.bids, bids)
                if not low <= len(book.asks.prices) <= high:
                    self._keep_depth(book.asks, asks)
                return bids, asks, trade
        return bids, asks, None

    # --- operations -----------------------------------------------------------------------------

    def _operate(self, bids: list[Entry], asks: list[Entry]) -> Trade | None:
        r = self.rand()
        side, out = (self.book.bids, bids) if self.rand() < 0.5 else (self.book.asks, asks)
        if r < 0.40:
            self._resize(side, out)
        elif r < 0.55:
            self._insert(side, out)
        elif r < 0.70:
            self._remove(side, out)
        elif r < 0.85:
            return self._trade(side, out)
        else:
            self._shift(bids, asks)
        return None

    def _size(self) -> int:
        return 1 + int(EXP[int(self.rand() * TABLE)] * self.lot_mean)

    def _at(self, side: Side) -> int | None:
        """A level near the touch (geometric in the distance from it), None for an empty side."""
        prices = side.prices
        n = len(prices)
        if not n:
            return None
        k = INDEXES[int(self.rand() * TABLE)]
        if k >= n:
            k = n - 1
        return prices[-1 - k] if side.is_bid else prices[k]

    def _emit(self, side: Side, out: list[Entry], price: int, anon: int) -> None:
        user = side.user.get(price, 0) if side.user else 0
        entry = side.set(price, anon + user)
        if entry is not None:
            out.append(entry)

    def _resize(self, side: Side, out: list[Entry]) -> None:
        price = self._at(side)
        if price is None:
            self._insert(side, out)
            return
        anon = side.lots[price] - (side.user.get(price, 0) if side.user else 0)
        delta = self._size() // 2 + 1
        self._emit(side, out, price, anon + delta if self.rand() < 0.5 else max(1, anon - delta))

    def _insert(self, side: Side, out: list[Entry]) -> None:
        opposite = self.book.asks if side.is_bid else self.book.bids
        limit = opposite.best()
        best = side.best()
        sign = 1 if side.is_bid else -1
        if best is None:
            price = self.ref if limit is None else limit - sign * self.grid
        elif self.rand() < 0.3:
            price = best + sign * self.grid
        else:
            price = best - sign * self.grid * (1 + int(self.rand() * self.depth))
        if price < self.min_price or price > self.max_price or price in side.lots:
            return
        if limit is not None and (price >= limit if side.is_bid else price <= limit):
            return
        self._emit(side, out, price, self._size())

    def _remove(self, side: Side, out: list[Entry]) -> None:
        if len(side.prices) <= self.depth // 2:
            return
        price = self._at(side)
        if price is not None and not (side.user and side.user.get(price)):
            self._emit(side, out, price, 0)

    def _trade(self, side: Side, out: list[Entry]) -> Trade | None:
        best = side.best()
        if best is None:
            return None
        anon = side.lots[best] - (side.user.get(best, 0) if side.user else 0)
        if anon <= 0:
            return None
        lots = min(anon, 1 + int(EXP[int(self.rand() * TABLE)] * self.lot_mean / 2))
        self._emit(side, out, best, anon - lots)
        return (best, lots, not side.is_bid)

    def _shift(self, bids: list[Entry], asks: list[Entry]) -> None:
        """Take out the touch on one side and leave a level at that price on the other."""
        bid, ask = self.book.bids.best(), self.book.asks.best()
        mid = (bid + ask) / 2 if bid is not None and ask is not None else float(bid or ask or self.ref)
        pull = max(-0.2, min(0.2, 20.0 * (self.ref - mid) / self.ref))
        up = self.rand() < 0.5 + pull
        side, out, other, other_out = (
            (self.book.asks, asks, self.book.bids, bids)
            if up
            else (self.book.bids, bids, self.book.asks, asks)
        )
        best = side.best()
        if best is None or (side.user and side.user.get(best)):
            return
        self._emit(side, out, best, 0)
        if best >= self.min_price and best not in other.lots:
            self._emit(other, other_out, best, self._size())

    def _keep_depth(self, side: Side, out: list[Entry]) -> None:
        """Drop the farthest level above `depth`; add one beyond it below `depth // 2`."""
        n = len(side.prices)
        if n > self.depth:
            worst = side.worst()
            if not (side.user and side.user.get(worst)) and all(e[1] != worst for e in out):
                self._emit(side, out, worst, 0)
        elif n < self.depth // 2 and n:
            price = side.worst() + (-self.grid if side.is_bid else self.grid)
            if self.min_price <= price <= self.max_price and all(e[1] != price for e in out):
                self._emit(side, out, price, self._size())
