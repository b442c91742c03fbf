"""Instruments as Deribit defines them: names, dates, tick and amount grids, and their API objects.

Pure. Every expiry is 08:00 UTC; names carry the date as Deribit writes it (`4DEC26`). Options
are quoted in coins on Deribit's grid: 0.0001 up to 0.005 and 0.0005 above (`tick_size_steps`),
amounts in coins (0.1 BTC, 1 ETH); futures in USD.

Rules it keeps: prices live on an integer grid of the instrument's minimum tick (`ticks`), amounts
on an integer grid of the minimum trade amount (`lots`); floats are made only at the edge (`px`,
`amt`), rounded to the grid's decimals so they print exactly as Deribit would.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from typing import Any

from feeder.sim import pricing
from feeder.sim.clock import EXPIRY_HOUR

MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
PERPETUAL_EXPIRY_MS = 32503708800000  # what Deribit reports for perpetuals (year 3000)
PERPETUAL_CREATED_MS = 1534167754000  # BTC-PERPETUAL's creation_timestamp in Deribit's example
REF_PRICE = {"BTC": 90000.0, "ETH": 3000.0}  # the index at start
CURRENCY_INFO = {
    "BTC": {"coin_type": "BITCOIN", "currency_long": "Bitcoin", "fee": 0.0001, "decimals": 8},
    "ETH": {"coin_type": "ETHER", "currency_long": "Ethereum", "fee": 0.0006, "decimals": 6},
}
# Currencies Deribit lists without inverse instruments here: get_instruments answers them with [].
OTHER_CURRENCIES = ("USDC", "USDT", "EURR", "SOL", "XRP", "BNB", "PAXG")
DEFAULT_ACTIVE = ("BTC-PERPETUAL", "ETH-PERPETUAL")
OPTION_TICK, OPTION_STEP_ABOVE, OPTION_STEP_TICK = 0.0001, 0.005, 0.0005

_NAME_RE = re.compile(
    r"^(?P<base>BTC|ETH)-(?:(?P<perp>PERPETUAL)|(?P<day>\d{1,2})(?P<mon>[A-Z]{3})(?P<yy>\d{2})"
    r"(?:-(?P<strike>\d+)-(?P<cp>[CP]))?)$"
)


def _is_pow2(n: int) -> bool:
    return n & (n - 1) == 0


def _decimals(step: float) -> int:
    text = f"{step:.10f}".rstrip("0")
    return len(text.split(".")[1]) if "." in text else 0


@dataclass(frozen=True)
class Instrument:
    """One tradeable instrument and its grids."""

    name: str
    instrument_id: int
    base: str
    kind: str  # "future" | "option"
    settlement_period: str  # "perpetual" | "day" | "week" | "month"
    expiry_ms: int
    tick: float  # minimum tick size
    lot: float  # minimum trade amount (USD for futures, coins for options)
    contract_size: int
    ref_price: float  # where its book starts (options: the model's value at listing)
    creation_ms: int = 0
    strike: float | None = None
    option_type: str | None = None  # "call" | "put"
    step_above: float | None = None  # options: price above which the tick is coarser
    step_tick: float | None = None
    tick_decimals: int = field(init=False)
    lot_decimals: int = field(init=False)
    exact: bool = field(init=False)  # tick and lot are dyadic (0.5, 10): ticks * tick needs no rounding

    def __post_init__(self) -> None:
        object.__setattr__(self, "tick_decimals", _decimals(self.tick))
        object.__setattr__(self, "lot_decimals", _decimals(self.lot))
        dyadic = all(_is_pow2(Fraction(repr(x)).denominator) for x in (self.tick, self.lot))
        object.__setattr__(self, "exact", dyadic)

    @property
    def index_name(self) -> str:
        return f"{self.base.lower()}_usd"

    @property
    def is_perpetual(self) -> bool:
        return self.settlement_period == "perpetual"

    @property
    def coarse(self) -> int:
        """Ticks per price step above `step_above` (1 without tick steps)."""
        return round(self.step_tick / self.tick) if self.step_tick else 1

    @property
    def grid(self) -> int:
        """The random walk's price step in ticks: an option's book lives either on the fine grid
        below `step_above` (cheap options) or on the coarse one everywhere, so every price is valid."""
        return 1 if self.ceiling is not None or not self.step_tick else self.coarse

    @property
    def ceiling(self) -> int | None:
        """Options on the fine grid: the highest price (ticks) their book may reach."""
        if self.step_above is None or self.ref_price >= self.step_above / 2:
            return None
        return round(self.step_above / self.tick)

    def px(self, ticks: int) -> float:
        return ticks * self.tick if self.exact else round(ticks * self.tick, self.tick_decimals)

    def amt(self, lots: int) -> float:
        return lots * self.lot if self.exact else round(lots * self.lot, self.lot_decimals)

    def to_ticks(self, price: float) -> int | None:
        """The price in ticks, or None when it is not on this instrument's tick grid."""
        ticks = round(price / self.tick)
        if abs(ticks * self.tick - price) > self.tick * 1e-6:
            return None
        if self.step_above is not None and price > self.step_above + 1e-12 and ticks % self.coarse:
            return None
        return ticks

    def to_lots(self, amount: float) -> int | None:
        """The amount in lots, or None when it is not a positive multiple of the minimum amount."""
        lots = round(amount / self.lot)
        if lots <= 0 or abs(lots * self.lot - amount) > self.lot * 1e-6:
            return None
        return lots

    def api_object(self, is_active: bool = True) -> dict[str, Any]:
        """The instrument object as public/get_instruments returns it."""
        option = self.kind == "option"
        obj = {
            "tick_size": self.tick,
            "tick_size_steps": (
                [{"above_price": self.step_above, "tick_size": self.step_tick}] if self.step_above else []
            ),
            "taker_commission": 0.0003 if option else 0.0005,
            "settlement_period": self.settlement_period,
            "settlement_currency": self.base,
            "quote_currency": self.base if option else "USD",
            "counter_currency": "USD",
            "price_index": self.index_name,
            "min_trade_amount": self.lot if option else int(self.lot),
            "maker_commission": 0.0003 if option else 0.0,
            "kind": self.kind,
            "is_active": is_active,
            "instrument_name": self.name,
            "instrument_id": self.instrument_id,
            "expiration_timestamp": self.expiry_ms,
            "creation_timestamp": self.creation_ms,
            "contract_size": self.contract_size,
            "block_trade_tick_size": 0.0001 if option else 0.01,
            "block_trade_min_trade_amount": (25 if self.base == "BTC" else 250) if option else 200000,
            "block_trade_commission": 0.0003 if option else 0.00025,
            "base_currency": self.base,
        }
        if option:
            obj.update(strike=self.strike, option_type=self.option_type, instrument_type="reversed")
        else:
            obj.update(
                instrument_type="reversed",
                future_type="reversed",
                max_leverage=50,
                max_liquidation_commission=0.0075,
            )
        return obj


def currency_object(currency: str) -> dict[str, Any]:
    """A currency as public/get_currencies returns it."""
    info = CURRENCY_INFO[currency]
    return {
        "coin_type": info["coin_type"],
        "currency": currency,
        "currency_long": info["currency_long"],
        "min_confirmations": 1,
        "min_withdrawal_fee": 0.0001,
        "withdrawal_fee": info["fee"],
        "withdrawal_priorities": [],
        "network_currency": currency,
        "network_fee": info["fee"],
        "decimals": info["decimals"],
        "in_cross_collateral_pool": True,
    }


# --- dates --------------------------------------------------------------------------------------


def expiry_code(day: date) -> str:
    """Deribit's date code: day without leading zero, month, two-digit year (`4DEC26`)."""
    return f"{day.day}{MONTHS[day.month - 1]}{day.year % 100:02d}"


def parse_expiry_code(code: str) -> date | None:
    m = re.fullmatch(r"(\d{1,2})([A-Z]{3})(\d{2})", code)
    if m is None or m[2] not in MONTHS:
        return None
    try:
        day = date(2000 + int(m[3]), MONTHS.index(m[2]) + 1, int(m[1]))
    except ValueError:
        return None
    return day if expiry_code(day) == code else None


def expiry_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, EXPIRY_HOUR, tzinfo=UTC).timestamp() * 1000)


def to_date(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def last_friday(year: int, month: int) -> date:
    nxt = date(year + month // 12, month % 12 + 1, 1)
    day = nxt - timedelta(days=1)
    return day - timedelta(days=(day.weekday() - 4) % 7)


def period_of(day: date) -> str:
    """The settlement period Deribit gives an expiry on `day`."""
    if day == last_friday(day.year, day.month):
        return "month"
    return "week" if day.weekday() == 4 else "day"


# --- constructors -------------------------------------------------------------------------------


def future(
    base: str, day: date | None, period: str, now_ms: int, index: float, created_ms: int
) -> Instrument:
    """A perpetual (day None) or a dated future priced at the index carried to its expiry."""
    btc = base == "BTC"
    expiry = PERPETUAL_EXPIRY_MS if day is None else expiry_ms(day)
    t = 0.0 if day is None else pricing.years(expiry, now_ms)
    return Instrument(
        name=f"{base}-PERPETUAL" if day is None else f"{base}-{expiry_code(day)}",
        instrument_id=0,
        base=base,
        kind="future",
        settlement_period=period,
        expiry_ms=expiry,
        tick=0.5 if (btc and day is None) else 2.5 if btc else 0.05,
        lot=10.0 if btc else 1.0,
        contract_size=10 if btc else 1,
        ref_price=pricing.forward(index, t),
        creation_ms=PERPETUAL_CREATED_MS if day is None else created_ms,
    )


def option(
    base: str, day: date, period: str, strike: int, call: bool, now_ms: int, index: float, created_ms: int
) -> Instrument:
    """An option whose book starts at the model's value (in coins) for the index at `now_ms`."""
    expiry = expiry_ms(day)
    t = pricing.years(expiry, now_ms)
    fwd = pricing.forward(index, t)
    usd = pricing.value(fwd, strike, t, pricing.smile(base, fwd, strike, t), call)
    return Instrument(
        name=f"{base}-{expiry_code(day)}-{strike}-{'C' if call else 'P'}",
        instrument_id=0,
        base=base,
        kind="option",
        settlement_period=period,
        expiry_ms=expiry,
        tick=OPTION_TICK,
        lot=0.1 if base == "BTC" else 1.0,
        contract_size=1,
        ref_price=round(max(OPTION_TICK, math.floor(usd / fwd / OPTION_TICK) * OPTION_TICK), 4),
        creation_ms=created_ms,
        strike=float(strike),
        option_type="call" if call else "put",
        step_above=OPTION_STEP_ABOVE,
        step_tick=OPTION_STEP_TICK,
    )


def parse_name(name: str, now_ms: int, index: float) -> Instrument | None:
    """An instrument for a well-formed Deribit name with a future expiry, else None."""
    m = _NAME_RE.match(name)
    if not m:
        return None
    base = m["base"]
    if m["perp"]:
        return future(base, None, "perpetual", now_ms, index, now_ms)
    day = parse_expiry_code(f"{m['day']}{m['mon']}{m['yy']}")
    if day is None or expiry_ms(day) <= now_ms:
        return None
    if m["strike"]:
        if m["strike"] != str(int(m["strike"])) or int(m["strike"]) <= 0:
            return None
        return option(base, day, period_of(day), int(m["strike"]), m["cp"] == "C", now_ms, index, now_ms)
    return future(base, day, period_of(day), now_ms, index, now_ms)
