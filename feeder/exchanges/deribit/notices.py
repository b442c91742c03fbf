"""Deribit notifications about the market itself, not one book: listings and expiries, currency locks,
and the mark prices of a whole option chain.

Owns the shape of the `instrument.state.{kind}.{currency}`, `platform_state` and
`markprice.options.{index_name}` payloads (reference/deribit/asyncapi.json). Pure, like parse.py: a
parse function returns a checked value or raises `BadMessage` naming the field.

Instrument states: `created` and `started` list an instrument (its book may open later); `settled`,
`closed`, `terminated`, `deactivated` and `delivered` end one. Deribit also settles futures and
perpetuals daily without ending them, so `settled` ends an instrument only once its expiry has come
(`ends`).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from feeder.errors import BadMessage

LISTED_STATES = ("created", "started")
ENDED_STATES = ("settled", "closed", "terminated", "deactivated", "delivered")
SETTLEMENT_MARGIN_MS = 3_600_000  # a `settled` this close to (or after) the expiry is the expiry's


class InstrumentState(NamedTuple):
    """One `instrument.state.*` notification."""

    instrument: str
    state: str  # one of LISTED_STATES or ENDED_STATES
    timestamp_ms: int

    @property
    def listed(self) -> bool:
        return self.state in LISTED_STATES

    def ends(self, expiration_ms: int) -> bool:
        """Whether this state ends an instrument that expires at `expiration_ms`."""
        if self.state == "settled":
            return self.timestamp_ms >= expiration_ms - SETTLEMENT_MARGIN_MS
        return self.state in ENDED_STATES


class PlatformLock(NamedTuple):
    """A `platform_state` notification that locks or unlocks the instruments of one price index."""

    price_index: str
    locked: bool


def parse_instrument_state(data: Any) -> InstrumentState:
    if type(data) is not dict:
        raise BadMessage("instrument.state data", data, "an object")
    name, state, timestamp = data.get("instrument_name"), data.get("state"), data.get("timestamp")
    if type(name) is not str or not name:
        raise BadMessage("instrument_name", name, "an instrument name")
    if state not in LISTED_STATES + ENDED_STATES:
        raise BadMessage("state", state, f"one of {', '.join(LISTED_STATES + ENDED_STATES)}")
    if type(timestamp) is not int or timestamp < 0:
        raise BadMessage("timestamp", timestamp, "an integer >= 0 (ms)")
    return InstrumentState(name, state, timestamp)


def parse_platform_state(data: Any) -> PlatformLock | None:
    """A lock or unlock of a price index; None for the other platform_state notifications (they carry
    no `price_index`, e.g. maintenance announcements)."""
    if type(data) is not dict:
        raise BadMessage("platform_state data", data, "an object")
    index = data.get("price_index")
    if index is None:
        return None
    locked = data.get("locked")
    if type(index) is not str or not index:
        raise BadMessage("price_index", index, "an index name such as btc_usd")
    if type(locked) is not bool:
        raise BadMessage("locked", locked, "true or false")
    return PlatformLock(index, locked)


def markprice_items(data: Any) -> list[tuple[str, int, float, float]]:
    """(instrument, timestamp_ms, mark_price, iv) of each option of a `markprice.options.*` payload; iv NaN
    when absent."""
    if type(data) is not list:
        raise BadMessage("markprice data", data, "a list of {instrument_name, mark_price, iv, timestamp}")
    out = []
    for item in data:
        if type(item) is not dict:
            raise BadMessage("markprice item", item, "an object")
        name, mark, iv, ts = (item.get(k) for k in ("instrument_name", "mark_price", "iv", "timestamp"))
        if type(name) is not str or not name:
            raise BadMessage("instrument_name", name, "an instrument name")
        if (type(mark) is not float and type(mark) is not int) or not 0.0 <= mark < math.inf:
            raise BadMessage("mark_price", mark, "a finite number >= 0")
        if iv is None:
            iv = math.nan
        elif (type(iv) is not float and type(iv) is not int) or not 0.0 <= iv < math.inf:
            raise BadMessage("iv", iv, "absent, null or a finite number >= 0")
        if type(ts) is not int or ts < 0:
            raise BadMessage("timestamp", ts, "an integer >= 0 (ms)")
        out.append((name, ts, mark, iv))
    return out
