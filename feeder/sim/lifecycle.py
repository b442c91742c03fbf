"""Instruments coming and going as the exchange's clock runs: listings, expiries, delistings, locks.

The steps, and the states `instrument.state.{kind}.{currency}` announces for them (`ANNOUNCED`: the
vendored spec's lifecycle, "classic", or the order book states Deribit moved to in January 2026,
"book"): a listing is `created` then `started` (book: `open`); it trades at once. At its expiry
(08:00 UTC) an instrument is `settled` (book: `settlement`, `delivered`): its user orders are
cancelled (`cancel_reason` "settlement"), its book is emptied by one last change (so the truth
knows the empty book at that change_id), its ticker's state is "closed" (book: "delivered") with
the delivery price (the index then) as settlement_price; `get_instruments` lists it only with
`expired=true`. A delisted one is `closed` (book: `inactive`) the same way, without a delivery
price. `settlement_grace` wall seconds later either is `terminated` (book: `archivized`): its
channels end (the subscriptions silently go away) and subscribing to them is refused. When the clock passes an
08:00 UTC, what expired there settles and the expiries that schedule brings in (chain.py) are
listed around the index of then, so the chain keeps its shape.

A lock (`lock(currency)`) is what Deribit does on an incident: `platform_state` says
`{"price_index": "btc_usd", "locked": true}`, the currency's books stop moving, new orders and
edits get 10019 locked_by_admin, cancels still work; `public/status` lists it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from feeder.sim.chain import ChainSize, listing
from feeder.sim.clock import expiry_hours
from feeder.sim.hub import Hub
from feeder.sim.instruments import Instrument
from feeder.sim.market import InstrumentState, Market

ANNOUNCED = {
    "classic": {
        "listed": ("created", "started"),
        "settled": ("settled",),
        "closed": ("closed",),
        "terminated": ("terminated",),
    },
    "book": {
        "listed": ("open",),
        "settled": ("settlement", "delivered"),
        "closed": ("inactive",),
        "terminated": ("archivized",),
    },
}
BOOK_STATE = {  # what a ticker's `state` says once an instrument stopped trading
    "classic": {"settled": "closed", "closed": "closed"},
    "book": {"settled": "delivered", "closed": "inactive"},
}


@dataclass
class Events:
    """What one step of the lifecycle did (names), for the control channel."""

    listed: list[str] = field(default_factory=list)
    settled: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    terminated: list[str] = field(default_factory=list)

    def add(self, other: Events) -> Events:
        for name in ("listed", "settled", "closed", "terminated"):
            getattr(self, name).extend(getattr(other, name))
        return self

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if v}


class Lifecycle:
    def __init__(
        self, market: Market, hub: Hub, size: ChainSize, grace: float, now_ms: int, states: str = "classic"
    ):
        self.market, self.hub, self.size, self.grace = market, hub, size, grace
        self.announced, self.book_state = ANNOUNCED[states], BOOK_STATE[states]
        self.last_ms = now_ms  # the exchange time the schedule was last brought up to
        self.ending: list[tuple[float, int]] = []  # (monotonic deadline, index) to terminate
        self.unlock_at: dict[str, float] = {}

    # --- the clock -----------------------------------------------------------------------------

    def tick(self, now_ms: int, mono: float) -> Events:
        """Everything due by exchange time `now_ms` and monotonic time `mono`."""
        events = Events()
        for at in expiry_hours(self.last_ms, now_ms):
            events.add(self.roll(at, mono))
        self.last_ms = max(self.last_ms, now_ms)
        due = [index for deadline, index in self.ending if deadline <= mono]
        if due:
            self.ending = [(d, i) for d, i in self.ending if d > mono]
            for index in due:
                events.terminated.append(self.terminate(self.market.states[index], now_ms))
        for base, until in list(self.unlock_at.items()):
            if until <= mono:
                self.unlock(base)
        return events

    def roll(self, at_ms: int, mono: float) -> Events:
        """The schedule at 08:00 UTC `at_ms`: what expired settles, the new expiries are listed."""
        events = Events()
        for st in list(self.market.states):
            if st.trading and not st.inst.is_perpetual and st.inst.expiry_ms <= at_ms:
                events.settled.append(self.end(st, "settled", at_ms, mono))
        index = {base: self.market.index_price(base) for base in ("BTC", "ETH")}
        known = self.market.catalogue.by_name
        for inst in listing(at_ms, index, self.size, at_ms):
            if inst.name not in known:
                events.listed.append(self.list(inst, at_ms).inst.name)
        return events

    def next_expiry(self) -> int | None:
        """The exchange time of the next expiry of an instrument that trades."""
        dated = [st.inst.expiry_ms for st in self.market.states if st.trading and not st.inst.is_perpetual]
        return min(dated) if dated else None

    # --- one instrument ------------------------------------------------------------------------

    def list(self, inst: Instrument, ts_ms: int) -> InstrumentState:
        st = self.market.add(inst)
        self.hub.add_instrument()
        self._announce(st, "listed", ts_ms)
        return st

    def end(self, st: InstrumentState, status: str, ts_ms: int, mono: float) -> str:
        """Settle (at the index of now) or close `st`; terminated `grace` seconds after `mono`."""
        settlement = self.market.index_price(st.inst.base) if status == "settled" else None
        st.book_state = self.book_state[status]
        orders, change = self.market.end(st, status, settlement, ts_ms)
        if change is not None:
            self.hub.publish([change])
        if orders:
            self.hub.user_events(orders, [])
        self.hub.final_ticker(st.index, ts_ms)
        self._announce(st, status, ts_ms)
        self.ending.append((mono + self.grace, st.index))
        return st.inst.name

    def terminate(self, st: InstrumentState, ts_ms: int) -> str:
        st.status = "terminated"
        self.market.catalogue.terminate(st.index)
        self.hub.forget_instrument(st.index, ts_ms)
        self._announce(st, "terminated", ts_ms)
        return st.inst.name

    def _announce(self, st: InstrumentState, step: str, ts_ms: int) -> None:
        for state in self.announced[step]:
            self.hub.instrument_state(st.inst, state, ts_ms)

    # --- locks ---------------------------------------------------------------------------------

    def lock(self, base: str, seconds: float | None, mono: float) -> None:
        self.market.locked.add(base)
        if seconds is not None:
            self.unlock_at[base] = mono + seconds
        self.hub.platform({"price_index": f"{base.lower()}_usd", "locked": True})

    def unlock(self, base: str) -> None:
        self.unlock_at.pop(base, None)
        if base in self.market.locked:
            self.market.locked.discard(base)
            self.hub.platform({"price_index": f"{base.lower()}_usd", "locked": False})
