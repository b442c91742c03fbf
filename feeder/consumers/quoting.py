"""The example strategy's decisions, pure: book records in, target quotes out; own orders in, actions out.

Rules kept here:
- Quote only on a trustworthy book: from a SNAPSHOT (or from the first record seen, unless it is a
  GAP) until a GAP. A GAP, or the ring being closed, means no quotes at once (cancel them); quoting
  resumes at the next SNAPSHOT.
- CROSSED records and books with an empty side leave the targets as they are.
- Targets move when the mid has moved at least `requote_ticks` ticks from the mid they were made for,
  and at most once per `min_interval` seconds (exchange rate limits). Bids round down and asks round up
  to the tick grid, `offset_ticks` ticks from the mid.
- At most one order of ours per side. A side whose last request had an unknown outcome gets no new
  request until it was reconciled with the exchange's open orders (ours carry a label starting with
  the strategy's prefix): never two live orders where one was meant. A request that was never sent
  changes nothing and is retried.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from feeder import (
    CROSSED,
    GAP,
    SNAPSHOT,
    ConnectionLost,
    ExchangeError,
    NoHealthyWorker,
    OutcomeUnknown,
    RateLimited,
    RequestTimeout,
    UsageError,
)

BUY, SELL = "buy", "sell"
SIDES = (BUY, SELL)
LABEL_MAX = 64  # Deribit's limit
_PREFIX_RE = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
# Deribit: 11044 not_open_order, 10004 order_not_found: the order is no longer open (filled or cancelled)
ORDER_CLOSED_CODES = frozenset({11044, 10004})


class Mode(enum.Enum):
    WAITING = "waiting"  # no record yet
    QUOTING = "quoting"
    PAUSED = "paused"  # GAP (or ring closed) seen: no quotes until a SNAPSHOT


@dataclass(frozen=True)
class QuoteParams:
    """How to quote; validated at construction (UsageError names the parameter)."""

    tick: float
    amount: float
    offset_ticks: int = 20
    requote_ticks: int = 5
    min_interval: float = 0.25

    def __post_init__(self) -> None:
        for name in ("tick", "amount"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise UsageError(f"{name} must be a positive number, got {value!r}")
        for name in ("offset_ticks", "requote_ticks"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise UsageError(f"{name} must be an integer >= 1, got {value!r}")
        if not (isinstance(self.min_interval, int | float) and self.min_interval >= 0):
            raise UsageError(f"min_interval must be a number of seconds >= 0, got {self.min_interval!r}")

    @property
    def decimals(self) -> int:
        """Decimals of the tick (prices are rounded to them, so they print as the exchange does)."""
        text = f"{self.tick:.10f}".rstrip("0")
        return len(text.split(".")[1]) if "." in text else 0


@dataclass(frozen=True)
class Targets:
    bid: float
    ask: float
    mid: float

    def price(self, side: str) -> float:
        return self.bid if side == BUY else self.ask


@dataclass(frozen=True)
class Change:
    """New targets (None: no quotes at all) and why."""

    targets: Targets | None
    reason: str


class Quoter:
    """Turns book records into target quotes, following the trust rules of the module doc."""

    def __init__(self, params: QuoteParams):
        self.params = params
        self.mode = Mode.WAITING
        self.targets: Targets | None = None
        self._last_ns = 0

    def on_records(self, records: np.ndarray) -> list[Change]:
        """The changes a batch makes, in order: every GAP and SNAPSHOT counts, else only the last record."""
        if not len(records):
            return []
        flags = records["flags"]
        marks = set(np.flatnonzero(flags & (GAP | SNAPSHOT)).tolist()) | {len(records) - 1}
        changes = (self.on_record(records[i]) for i in sorted(marks))
        return [c for c in changes if c is not None]

    def on_record(self, rec: np.void) -> Change | None:
        flags = int(rec["flags"])
        where = f"change_id {rec['change_id']}"
        if flags & GAP:
            return self._pause(f"GAP at {where}: the book is not trustworthy; cancelling until a SNAPSHOT")
        resumed = False
        if flags & SNAPSHOT and self.mode is not Mode.QUOTING:
            resumed, self.mode = self.mode is Mode.PAUSED, Mode.QUOTING
        elif self.mode is Mode.WAITING:
            self.mode = Mode.QUOTING  # attached mid-stream: the book is live since its last SNAPSHOT
        if self.mode is not Mode.QUOTING or flags & CROSSED:
            return None
        return self._requote(rec, f"SNAPSHOT at {where}: resuming" if resumed else "")

    def on_closed(self) -> Change | None:
        """The feeder closed the ring: like a GAP."""
        return self._pause("the feeder closed the ring: cancelling until a SNAPSHOT")

    def _pause(self, reason: str) -> Change | None:
        if self.mode is Mode.PAUSED:
            return None
        self.mode, self.targets = Mode.PAUSED, None
        return Change(None, reason)

    def _requote(self, rec: np.void, reason: str) -> Change | None:
        if not rec["bid_count"] or not rec["ask_count"]:
            return None
        bid, ask = float(rec["bid_px"][0]), float(rec["ask_px"][0])
        if math.isnan(bid) or math.isnan(ask):
            return None
        p = self.params
        mid = (bid + ask) / 2
        now_ns = int(rec["ts_recv"])
        if self.targets is not None and not reason:
            if abs(mid - self.targets.mid) < p.requote_ticks * p.tick - 1e-9 * p.tick:
                return None
            if now_ns - self._last_ns < p.min_interval * 1e9:
                return None
        self._last_ns = now_ns
        self.targets = targets_for(mid, p)
        return Change(self.targets, reason or f"mid {mid:.{p.decimals + 1}f}")


def targets_for(mid: float, p: QuoteParams) -> Targets:
    """Bid `offset_ticks` below the mid rounded down to the tick grid, ask above rounded up."""
    units = mid / p.tick
    bid = math.floor(units - p.offset_ticks + 1e-9)
    ask = math.ceil(units + p.offset_ticks - 1e-9)
    return Targets(round(max(bid, 1) * p.tick, p.decimals), round(ask * p.tick, p.decimals), mid)


# --- own orders ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Order:
    """One of our open orders, as the exchange last told us."""

    order_id: str
    label: str
    side: str
    price: float
    amount: float


@dataclass(frozen=True)
class Unknown:
    """A side whose last request had an unknown outcome: reconcile before anything else on it."""

    label: str | None
    why: str


Slot = Order | Unknown | None


@dataclass(frozen=True)
class Place:
    side: str
    price: float


@dataclass(frozen=True)
class Edit:
    order: Order
    price: float


@dataclass(frozen=True)
class Cancel:
    order: Order


@dataclass(frozen=True)
class Reconcile:
    pass


Action = Place | Edit | Cancel | Reconcile


def plan(targets: Targets | None, orders: Mapping[str, Slot]) -> list[Action]:
    """What to send so that our orders match the targets (None: no orders)."""
    actions: list[Action] = []
    if any(isinstance(slot, Unknown) for slot in orders.values()):
        actions.append(Reconcile())
    for side in SIDES:
        slot = orders.get(side)
        if isinstance(slot, Unknown):
            continue
        want = None if targets is None else targets.price(side)
        if want is None:
            if slot is not None:
                actions.append(Cancel(slot))
        elif slot is None:
            actions.append(Place(side, want))
        elif slot.price != want:
            actions.append(Edit(slot, want))
    return actions


def check_prefix(prefix: str) -> str:
    if not isinstance(prefix, str) or not _PREFIX_RE.match(prefix):
        raise UsageError(f"label prefix {prefix!r} is not allowed: use 1-40 letters, digits, '_' or '-'")
    return prefix


def label(prefix: str, side: str, n: int) -> str:
    """`<prefix>-b<n>` / `<prefix>-s<n>`: unique per order, and recognisably ours."""
    text = f"{prefix}-{side[0]}{n}"
    if len(text) > LABEL_MAX:
        raise UsageError(f"order label {text!r} is longer than Deribit's {LABEL_MAX} characters")
    return text


def is_ours(order: Mapping[str, Any], prefix: str) -> bool:
    return str(order.get("label", "")).startswith(f"{prefix}-")


def order_from(obj: Mapping[str, Any]) -> Order | None:
    """Our view of an exchange order object; None unless it is open."""
    if obj.get("order_state") != "open":
        return None
    return Order(
        str(obj["order_id"]),
        str(obj.get("label", "")),
        obj["direction"],
        float(obj["price"]),
        float(obj["amount"]),
    )


def reconcile(
    open_orders: list[Mapping[str, Any]], prefix: str
) -> tuple[dict[str, Order | None], list[Order]]:
    """From `private/get_open_orders_by_instrument`: our order per side (the newest), and extras to cancel."""
    mine: dict[str, list[tuple[int, Order]]] = {BUY: [], SELL: []}
    for obj in open_orders:
        order = order_from(obj) if is_ours(obj, prefix) else None
        if order is not None and order.side in mine:
            mine[order.side].append((int(obj.get("creation_timestamp", 0)), order))
    kept: dict[str, Order | None] = {}
    extras: list[Order] = []
    for side, found in mine.items():
        found.sort(key=lambda pair: pair[0])
        kept[side] = found[-1][1] if found else None
        extras.extend(order for _, order in found[:-1])
    return kept, extras


class Outcome(enum.Enum):
    UNKNOWN = "unknown"  # the request may have reached the exchange: reconcile
    NOT_SENT = "not sent"  # nothing happened: retry later
    CLOSED = "closed"  # edit/cancel of an order that is no longer open (filled or cancelled)
    REFUSED = "refused"  # the exchange said no


def classify(exc: Exception) -> Outcome | None:
    """What a failed order request means for our orders; None for errors this module does not handle."""
    if isinstance(exc, OutcomeUnknown | RequestTimeout):
        return Outcome.UNKNOWN
    if isinstance(exc, ConnectionLost):
        return Outcome.UNKNOWN if exc.sent else Outcome.NOT_SENT
    if isinstance(exc, NoHealthyWorker | RateLimited):
        return Outcome.NOT_SENT
    if isinstance(exc, ExchangeError):
        return Outcome.CLOSED if exc.code in ORDER_CLOSED_CODES else Outcome.REFUSED
    return None
