"""The simulated order book: price levels in integer ticks, amounts in integer lots.

Pure. One `Side` per direction keeps a dict price -> total lots and a sorted price list (ascending
for both sides, so the best bid is the last element and the best ask the first). `user` holds the
lots of resting user orders at each price: the random walk only ever moves the rest ("anonymous"
liquidity), so user orders are filled by user orders only and tests stay deterministic.

Rules it keeps: a level with zero lots does not exist; `set` reports the Deribit action
(new/change/delete) of every mutation, so callers build change messages from what really happened.
"""

from __future__ import annotations

from bisect import bisect_left, insort

Entry = tuple[str, int, int]  # (action, price ticks, total lots after the change; 0 for delete)


class Side:
    __slots__ = ("is_bid", "lots", "prices", "user")

    def __init__(self, is_bid: bool):
        self.is_bid = is_bid
        self.lots: dict[int, int] = {}
        self.prices: list[int] = []
        self.user: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.prices)

    def best(self) -> int | None:
        if not self.prices:
            return None
        return self.prices[-1] if self.is_bid else self.prices[0]

    def worst(self) -> int:
        return self.prices[0] if self.is_bid else self.prices[-1]

    def anon(self, price: int) -> int:
        return self.lots.get(price, 0) - self.user.get(price, 0)

    def set(self, price: int, lots: int) -> Entry | None:
        """Set the total at `price`; the Deribit entry for it, None when nothing changed."""
        old = self.lots.get(price)
        if lots <= 0:
            if old is None:
                return None
            del self.lots[price]
            del self.prices[bisect_left(self.prices, price)]
            return ("delete", price, 0)
        if old == lots:
            return None
        self.lots[price] = lots
        if old is None:
            insort(self.prices, price)
            return ("new", price, lots)
        return ("change", price, lots)

    def top(self, n: int) -> list[tuple[int, int]]:
        """Up to n (price, lots) pairs, best first."""
        prices = self.prices[-n:][::-1] if self.is_bid else self.prices[:n]
        lots = self.lots
        return [(p, lots[p]) for p in prices]

    def levels(self) -> list[tuple[int, int]]:
        """Every level, best first."""
        return self.top(len(self.prices))

    def crosses(self, price: int) -> bool:
        """Would an opposite-side order at `price` trade against this side?"""
        best = self.best()
        if best is None:
            return False
        return price <= best if self.is_bid else price >= best


class Book:
    __slots__ = ("asks", "bids")

    def __init__(self) -> None:
        self.bids = Side(True)
        self.asks = Side(False)

    def side(self, is_bid: bool) -> Side:
        return self.bids if is_bid else self.asks

    def crossed(self) -> bool:
        bid, ask = self.bids.best(), self.asks.best()
        return bid is not None and ask is not None and bid >= ask

    def copy_levels(self) -> tuple[dict[int, int], dict[int, int]]:
        return dict(self.bids.lots), dict(self.asks.lots)
