"""A venue-neutral L2 order book whose top N lives in a book ring record, kept up to date in place.

Owns the price levels of one instrument and the level arrays of the record it is bound to (any depth:
the record's dtype says how many levels, `BookLayout`). Rules it keeps:
- Sizes are absolute (the new size of a level, never a delta). Prices are exact keys, as the venue
  sends them (an int and a float of the same value name the same level).
- Each side keeps a sorted list of keys with its best level last (bids: price; asks: minus price), so
  the busy end of the book is the cheap end of the list. A size change is one dict store; adding or
  removing a level is a binary search plus a list insert/delete (a memmove of a few kilobytes at
  worst for hundreds of levels): the cost does not grow with depth in practice.
- A change list (`[action, price, amount]` entries, action `new`, `change` or `delete`) is validated
  as it is applied, in one pass (`BookSide.apply`): numbers are ints or floats (never bools), prices
  finite and > 0, amounts finite and > 0 (>= 0 on a delete). The first bad entry, or the first the
  book contradicts (`new` on an existing level, `change` or `delete` of a missing one), stops the
  pass and is reported; the levels may then be half updated but the record is not: the caller must
  treat the book as broken until a snapshot replaces every level.
- The record is written only after a whole message applied (`L2Book.write`), and only what changed:
  a side whose top N changed sizes only gets those sizes stored where they lie; a side whose top N
  gained or lost a level is repacked in one `struct` call (zero padded); an untouched side is left alone.
"""

from __future__ import annotations

import math
import struct
from bisect import bisect_left, insort
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from operator import neg
from typing import Any

import numpy as np

from feeder.errors import SchemaError
from feeder.ring.schema import record_schema

OK, BAD, CONTRADICTS = 0, 1, 2  # what `BookSide.apply` found
CLEAN, SIZES, REPACK = 0, 1, 2  # how much of a side's record arrays is out of date
_INF = math.inf


@dataclass(frozen=True)
class BookLayout:
    """Where a book record keeps its levels: `depth` prices then `depth` sizes per side, bids then asks,
    back to back (so one byte range holds every level: the audit compares it)."""

    depth: int
    bid_offset: int  # bytes from the record's start to bid_px
    ask_offset: int

    @property
    def levels_end(self) -> int:
        return self.ask_offset + 16 * self.depth


@cache
def book_layout(dtype: np.dtype) -> BookLayout:
    """The layout of a book record dtype; SchemaError when its level arrays are not back to back."""
    fields = dtype.fields
    if fields is None or "bid_px" not in fields:
        raise SchemaError(f"not a book record dtype: {dtype}")
    depth = fields["bid_px"][0].shape[0]
    offsets = [fields[name][1] for name in ("bid_px", "bid_sz", "ask_px", "ask_sz")]
    for name in ("bid_sz", "ask_px", "ask_sz"):
        if fields[name][0] != fields["bid_px"][0]:
            raise SchemaError(f"book record: {name} must be {depth} float64 like bid_px")
    if offsets != [offsets[0] + 8 * depth * i for i in range(4)]:
        raise SchemaError("book record: bid_px, bid_sz, ask_px, ask_sz must lie back to back")
    return BookLayout(depth, offsets[0], offsets[2])


LAYOUT = book_layout(record_schema("book").dtype)
DEPTH: int = LAYOUT.depth
BID_OFFSET, ASK_OFFSET = LAYOUT.bid_offset, LAYOUT.ask_offset


Pack = Callable[..., None]  # struct.Struct.pack_into: (buffer, offset, *values)


@cache
def _packers(depth: int) -> tuple[Pack, ...]:
    """_packers(depth)[c]: c prices, zero padding to depth, c sizes, zero padding to depth."""
    return tuple(
        struct.Struct(f"<{c}d{8 * (depth - c)}x{c}d{8 * (depth - c)}x").pack_into for c in range(depth + 1)
    )


# What an unbound side writes into: no room, so a write before `bind` fails (struct.error, IndexError).
_UNBOUND = bytearray()
_UNBOUND_F64 = memoryview(_UNBOUND).cast("d")


class BookSide:
    """One side of a book: price levels keyed so that the best level sorts last."""

    __slots__ = (
        "_buf",
        "_depth",
        "_f64",
        "_keys",
        "_off",
        "_packs",
        "_sign",
        "_sizes",
        "_sz",
        "count",
        "touched",
    )

    def __init__(self, sign: float, depth: int = DEPTH):
        self._sign = sign  # +1.0 for bids (best = highest), -1.0 for asks (best = lowest)
        self._depth = depth
        self._packs = _packers(depth)
        self._sizes: dict[float, float] = {}  # signed key -> size
        self._keys: list[float] = []  # signed keys, ascending: best last
        self._buf: memoryview | bytearray = _UNBOUND  # the bound record (`L2Book`)
        self._f64 = _UNBOUND_F64
        self._off = self._sz = 0  # byte offset of this side's prices; float64 index of its sizes
        self.touched = REPACK  # how much of the record's arrays for this side is out of date
        self.count = 0  # levels in the record

    def __len__(self) -> int:
        return len(self._keys)

    def bind(self, buf: memoryview | bytearray, f64: memoryview[float], offset: int) -> None:
        """Keep this side's levels in `buf` from byte `offset` on (`f64`: the same bytes as float64)."""
        self._buf, self._f64, self._off = buf, f64, offset
        self._sz = offset // 8 + self._depth
        self.touched = REPACK

    def apply(self, entries: list[Any]) -> int:
        """Validate and apply `[action, price, amount]` entries in one pass: OK, or BAD / CONTRADICTS at
        the first entry that is malformed / that the book contradicts (see the module doc)."""
        sizes, keys, sign, depth = self._sizes, self._keys, self._sign, self._depth
        touched = self.touched
        for entry in entries:
            if type(entry) is not list or len(entry) != 3:
                return BAD
            action, price, amount = entry
            kind = type(price)
            if (kind is not float and kind is not int) or not 0.0 < price < _INF:
                return BAD
            kind = type(amount)
            if kind is not float and kind is not int:
                return BAD
            key = price * sign
            if action == "change":
                if not 0.0 < amount < _INF:
                    return BAD
                if key not in sizes:
                    return CONTRADICTS
                sizes[key] = amount
                if touched == CLEAN and (len(keys) <= depth or key >= keys[-depth]):
                    touched = SIZES
            elif action == "new":
                if not 0.0 < amount < _INF:
                    return BAD
                if key in sizes:
                    return CONTRADICTS
                sizes[key] = amount
                insort(keys, key)
                if len(keys) <= depth or key >= keys[-depth]:
                    touched = REPACK
            elif action == "delete":
                if not 0.0 <= amount < _INF:
                    return BAD
                if sizes.pop(key, None) is None:
                    return CONTRADICTS
                if len(keys) <= depth or key >= keys[-depth]:
                    touched = REPACK
                del keys[bisect_left(keys, key)]
            else:
                return BAD
        self.touched = touched
        return OK

    def set(self, price: float, size: float) -> bool:
        """Set the size at `price`; returns whether the level existed before."""
        key = price * self._sign
        sizes, keys = self._sizes, self._keys
        existed = key in sizes
        sizes[key] = size
        if not existed:
            insort(keys, key)
        if len(keys) <= self._depth or key >= keys[-self._depth]:
            self.touched = REPACK
        return existed

    def remove(self, price: float) -> bool:
        """Remove the level at `price`; returns whether it existed."""
        key = price * self._sign
        if self._sizes.pop(key, None) is None:
            return False
        keys = self._keys
        if len(keys) <= self._depth or key >= keys[-self._depth]:
            self.touched = REPACK
        del keys[bisect_left(keys, key)]
        return True

    def load(self, levels: Iterable[tuple[float, float]]) -> None:
        """Replace every level (a snapshot); later duplicates of a price win."""
        sign = self._sign
        self._sizes = {px * sign: size for px, size in levels}
        self._keys = sorted(self._sizes)
        self.touched = REPACK

    def clear(self) -> None:
        self._sizes.clear()
        self._keys.clear()
        self.touched = REPACK

    def best(self) -> float | None:
        """Best price, or None when the side is empty."""
        return self._keys[-1] * self._sign if self._keys else None

    def top(self, n: int) -> list[tuple[float, float]]:
        """The best `n` levels as (price, size), best first."""
        sign, sizes = self._sign, self._sizes
        return [(key * sign, sizes[key]) for key in self._keys[: -n - 1 : -1]]

    def write(self, entries: Sequence[Any]) -> None:
        """Bring the bound record's arrays for this side up to date after `apply(entries)` (or after
        set/remove/load, with any `entries`): sizes where only sizes changed, else a repack."""
        if self.touched == SIZES:
            keys, sizes, sign, f64, base = self._keys, self._sizes, self._sign, self._f64, self._sz
            last = len(keys) - 1
            floor = keys[-self._depth] if last >= self._depth else keys[0]
            for entry in entries:
                if entry[0] == "change":
                    key = entry[1] * sign
                    if key >= floor:
                        f64[base + last - bisect_left(keys, key)] = sizes[key]
        elif self.touched == REPACK:
            keys = self._keys[: -self._depth - 1 : -1]
            prices = keys if self._sign > 0 else map(neg, keys)
            self._packs[len(keys)](self._buf, self._off, *prices, *map(self._sizes.__getitem__, keys))
            self.count = len(keys)
        self.touched = CLEAN


class L2Book:
    """Bids and asks of one instrument, with their top levels kept in a bound book record."""

    __slots__ = ("asks", "bids", "layout")

    def __init__(self, record: memoryview | bytearray | None = None, layout: BookLayout = LAYOUT):
        """`record`: the bytes of the book record to keep up to date (bind later with `bind`)."""
        self.layout = layout
        self.bids = BookSide(1.0, layout.depth)
        self.asks = BookSide(-1.0, layout.depth)
        if record is not None:
            self.bind(record)

    def bind(self, record: memoryview | bytearray) -> None:
        """Write into `record` (a whole book record of this layout, as bytes) from now on."""
        f64 = memoryview(record).cast("B").cast("d")
        self.bids.bind(record, f64, self.layout.bid_offset)
        self.asks.bind(record, f64, self.layout.ask_offset)

    def load(self, bids: Iterable[tuple[float, float]], asks: Iterable[tuple[float, float]]) -> None:
        """Replace the whole book (a snapshot)."""
        self.bids.load(bids)
        self.asks.load(asks)

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()

    def crossed(self) -> bool:
        """Best bid at or above best ask (both sides present)."""
        bids, asks = self.bids._keys, self.asks._keys
        return bool(bids) and bool(asks) and bids[-1] >= -asks[-1]

    def write(self, bids: Sequence[Any] = (), asks: Sequence[Any] = ()) -> tuple[int, int]:
        """Bring the record up to date after the entries just applied (`BookSide.apply`), or after
        load/set/remove; returns (bid_count, ask_count). Untouched sides cost nothing."""
        if self.bids.touched:
            self.bids.write(bids)
        if self.asks.touched:
            self.asks.write(asks)
        return self.bids.count, self.asks.count
