"""Deribit instruments as `public/get_instruments` describes them, checked once into `InstrumentInfo`.

Owns the instrument's metadata and its kind as the feeder sees it. Pure. Rules it keeps:
- Kinds are Deribit's, except that a future whose `settlement_period` is `perpetual` is a
  `perpetual`: `option`, `future` (dated), `perpetual`, `spot`. Combos (`future_combo`,
  `option_combo`) are never served.
- A malformed instrument object raises `BadMessage` naming the field; the caller counts it and goes
  on without that instrument (one bad object never hides the others).
- The instrument.state channel of a kind is Deribit's kind (`perpetual` follows `future`'s).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from feeder.errors import BadMessage

KINDS = ("option", "future", "perpetual", "spot")
STATE_KIND = {"option": "option", "future": "future", "perpetual": "future", "spot": "spot"}
_API_KINDS = ("option", "future", "spot")  # combos are never served
_OPTION_NAME = re.compile(r"^[A-Z0-9_]+-\d{1,2}[A-Z]{3}\d{2}-[\dd.]+-[CP]$")
_FUTURE_NAME = re.compile(r"^[A-Z0-9_]+-\d{1,2}[A-Z]{3}\d{2}$")


def kind_by_name(name: str) -> str:
    """The kind Deribit's naming says an instrument is (`BTC-PERPETUAL`, `BTC-27DEC26`, `...-100000-C`,
    `BTC_USDC`): for plans made without asking the exchange."""
    if name.endswith("-PERPETUAL"):
        return "perpetual"
    if _OPTION_NAME.match(name):
        return "option"
    return "future" if _FUTURE_NAME.match(name) else "spot"


@dataclass(frozen=True)
class InstrumentInfo:
    """One instrument's metadata (what the inventory holds)."""

    name: str
    instrument_id: int
    kind: str  # KINDS
    base_currency: str
    quote_currency: str
    settlement_currency: str
    price_index: str
    expiration_ms: int  # Deribit's expiration_timestamp (year 3000 for perpetuals)
    tick_size: float
    contract_size: float
    min_trade_amount: float
    strike: float = math.nan  # options
    option_type: str = ""  # "call" | "put" for options
    tick_step_above: float = math.nan  # Deribit's first tick_size_steps entry, if any
    tick_step_size: float = math.nan
    currency: str = ""  # the get_instruments currency that listed it ("" when asked for any)

    @classmethod
    def from_api(cls, obj: Any, currency: str = "") -> InstrumentInfo | None:
        """The instrument, or None for a combo; BadMessage when a field is wrong."""
        if type(obj) is not dict:
            raise BadMessage("instrument", obj, "an object")
        api_kind = obj.get("kind")
        if type(api_kind) is str and api_kind.endswith("_combo"):
            return None
        if api_kind not in _API_KINDS:
            raise BadMessage("kind", api_kind, "option, future, spot, future_combo or option_combo")
        kind = (
            "perpetual" if api_kind == "future" and obj.get("settlement_period") == "perpetual" else api_kind
        )
        steps = obj.get("tick_size_steps") or []
        if type(steps) is not list or not all(type(s) is dict for s in steps):
            raise BadMessage("tick_size_steps", steps, "a list of {above_price, tick_size}")
        first = steps[0] if steps else {}
        option = kind == "option"
        return cls(
            name=_text(obj, "instrument_name"),
            instrument_id=_id(obj.get("instrument_id")),
            kind=kind,
            base_currency=_text(obj, "base_currency"),
            quote_currency=_text(obj, "quote_currency"),
            settlement_currency=str(obj.get("settlement_currency") or obj.get("quote_currency") or ""),
            price_index=_text(obj, "price_index"),
            expiration_ms=_int(obj, "expiration_timestamp"),
            tick_size=_positive(obj, "tick_size"),
            contract_size=_positive(obj, "contract_size"),
            min_trade_amount=_positive(obj, "min_trade_amount"),
            strike=_positive(obj, "strike") if option else math.nan,
            option_type=_option_type(obj.get("option_type")) if option else "",
            tick_step_above=_positive(first, "above_price") if first else math.nan,
            tick_step_size=_positive(first, "tick_size") if first else math.nan,
            currency=currency,
        )

    @classmethod
    def unknown(cls, name: str) -> InstrumentInfo:
        """What is known of an instrument the exchange was not asked about: its name and kind."""
        group = name.partition("-")[0]
        return cls(
            name,
            0,
            kind_by_name(name),
            group,
            "",
            "",
            f"{group.lower()}_usd",
            0,
            math.nan,
            math.nan,
            math.nan,
        )

    @property
    def state_kind(self) -> str:
        """The kind in Deribit's `instrument.state.{kind}.{currency}` channels."""
        return STATE_KIND[self.kind]

    @property
    def expires(self) -> bool:
        return self.kind in ("option", "future")


def _text(obj: dict[str, Any], field: str) -> str:
    value = obj.get(field)
    if type(value) is not str or not value:
        raise BadMessage(field, value, "a non-empty string")
    return value


def _id(value: Any) -> int:
    if type(value) is not int or not 0 < value < 1 << 32:
        raise BadMessage("instrument_id", value, "an integer from 1 to 2**32 - 1")
    return value


def _int(obj: dict[str, Any], field: str) -> int:
    value = obj.get(field)
    if type(value) is not int or value < 0:
        raise BadMessage(field, value, "an integer >= 0")
    return value


def _positive(obj: dict[str, Any], field: str) -> float:
    value = obj.get(field)
    if (type(value) is not float and type(value) is not int) or not 0.0 < value < math.inf:
        raise BadMessage(field, value, "a finite number > 0")
    return float(value)


def _option_type(value: Any) -> str:
    if type(value) is not str or value not in ("call", "put"):
        raise BadMessage("option_type", value, "'call' or 'put'")
    return value
