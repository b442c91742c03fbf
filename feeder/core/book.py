"""A venue-neutral L2 order book whose top N is written straight into a `book` ring record.

Owns the price levels of one instrument and knows which side of the record's level arrays is out of
date. Rules it keeps:
- Sizes are absolute (the new size of a level, never a delta). Prices are exact keys, as the venue
  sends them. The caller validates input (finite prices > 0, sizes > 0) before it gets here: this is
  the hot path and it checks nothing twice.
- Each side keeps a sorted list of keys with its best level last (bids: price; asks: minus price), so
  the busy end of the book is the cheap end of the list. A size change is one dict store; adding or
  removing a level is a binary search plus a list insert/delete (a memmove of a few kilobytes at
  worst for hundreds of levels): the cost does not grow with depth in practice.
- A side's top N is re-extracted only when an update touched it; the record's level arrays for that
  side are then packed in one `struct` call (zero padded), nothing allocated per level.
"""

from __future__ import annotations

import struct
from bisect import bisect_left, insort
from collections.abc import Iterable
from operator import neg

from feeder.errors import SchemaError
from feeder.ring.schema import record_schema

_BOOK = record_schema("book")
DEPTH: int = _BOOK.levels or 10


def _level_offset(px_field: str, sz_field: str) -> int:
    """Byte offset of a side's level arrays; sizes must follow prices so one pack fills both."""
    fields = _BOOK.dtype.fields
    px_off, sz_off = fields[px_field][1], fields[sz_field][1]
    if sz_off != px_off + 8 * DEPTH:
        raise SchemaError(f"book.json: {sz_field} must directly follow {px_field} ({DEPTH} float64 each)")
    return px_off


BID_OFFSET = _level_offset("bid_px", "bid_sz")
ASK_OFFSET = _level_offset("ask_px", "ask_sz")

# _PACKERS[c]: c prices, zero padding to DEPTH, c sizes, zero padding to DEPTH.
_PACKERS = tuple(
    struct.Struct(f"<{c}d{8 * (DEPTH - c)}x{c}d{8 * (DEPTH - c)}x").pack_into for c in range(DEPTH + 1)
)


class BookSide:
    """One side of a book: price levels keyed so that the best level sorts last."""

    __slots__ = ("_depth", "_keys", "_sign", "_sizes", "dirty")

    def __init__(self, sign: float, depth: int = DEPTH):
        self._sign = sign  # +1.0 for bids (best = highest), -1.0 for asks (best = lowest)
        self._depth = depth
        self._sizes: dict[float, float] = {}  # signed key -> size
        self._keys: list[float] = []  # signed keys, ascending: best last
        self.dirty = True  # the record's arrays for this side are out of date

    def __len__(self) -> int:
        return len(self._keys)

    def set(self, price: float, size: float) -> bool:
        """Set the size at `price`; returns whether the level existed before."""
        key = price * self._sign
        sizes, keys = self._sizes, self._keys
        existed = key in sizes
        sizes[key] = size
        if not existed:
            insort(keys, key)
        if not self.dirty and (len(keys) <= self._depth or key >= keys[-self._depth]):
            self.dirty = True
        return existed

    def remove(self, price: float) -> bool:
        """Remove the level at `price`; returns whether it existed."""
        key = price * self._sign
        if self._sizes.pop(key, None) is None:
            return False
        keys = self._keys
        if not self.dirty and (len(keys) <= self._depth or key >= keys[-self._depth]):
            self.dirty = True
        del keys[bisect_left(keys, key)]
        return True

    def load(self, levels: Iterable[tuple[float, float]]) -> None:
        """Replace every level (a snapshot); later duplicates of a price win."""
        sign = self._sign
        self._sizes = {px * sign: size for px, size in levels}
        self._keys = sorted(self._sizes)
        self.dirty = True

    def clear(self) -> None:
        self._sizes.clear()
        self._keys.clear()
        self.dirty = True

    def best(self) -> float | None:
        """Best price, or None when the side is empty."""
        return self._keys[-1] * self._sign if self._keys else None

    def top(self, n: int) -> list[tuple[float, float]]:
        """The best `n` levels as (price, size), best first."""
        sign, sizes = self._sign, self._sizes
        return [(key * sign, sizes[key]) for key in self._keys[: -n - 1 : -1]]

    def pack_top(self, buf: memoryview | bytearray, offset: int) -> int:
        """Write prices and sizes of the top levels at `offset` (zero padded); returns the level count."""
        keys = self._keys[: -self._depth - 1 : -1]
        prices = keys if self._sign > 0 else map(neg, keys)
        _PACKERS[len(keys)](buf, offset, *prices, *map(self._sizes.__getitem__, keys))
        self.dirty = False
        return len(keys)


class L2Book:
    """Bids and asks of one instrument, with the top `DEPTH` levels kept in a book record's layout."""

    __slots__ = ("_ask_count", "_bid_count", "asks", "bids")

    def __init__(self) -> None:
        self.bids = BookSide(1.0)
        self.asks = BookSide(-1.0)
        self._bid_count = self._ask_count = 0

    def load(self, bids: Iterable[tuple[float, float]], asks: Iterable[tuple[float, float]]) -> None:
        """Replace the whole book (a snapshot)."""
        self.bids.load(bids)
        self.asks.load(asks)

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()

    def crossed(self) -> bool:
        """Best bid at or above best ask (both sides present)."""
        bid, ask = self.bids.best(), self.asks.best()
        return bid is not None and ask is not None and bid >= ask

    def write_top(self, buf: memoryview | bytearray) -> tuple[int, int]:
        """Bring the level arrays of the book record in `buf` up to date; returns (bid_count, ask_count).

        Only sides changed since the last call are packed, so `buf` must be the same record every time
        (or call `invalidate()` first).
        """
        if self.bids.dirty:
            self._bid_count = self.bids.pack_top(buf, BID_OFFSET)
        if self.asks.dirty:
            self._ask_count = self.asks.pack_top(buf, ASK_OFFSET)
        return self._bid_count, self._ask_count

    def invalidate(self) -> None:
        """Force the next `write_top` to pack both sides (the target record changed)."""
        self.bids.dirty = self.asks.dirty = True
