"""The simulator's instrument catalogue: realistic Deribit instruments relative to a given date.

Owns instrument names, tick and amount grids, and the instrument objects `public/get_instruments`
returns. Pure: the catalogue is a function of the date (expiries are Fridays 08:00 UTC, as on
Deribit) and of the names asked for, so the same day always gives the same catalogue.

Rules it keeps: prices live on an integer grid of the instrument's minimum tick (`ticks`), amounts
on an integer grid of the minimum trade amount (`lots`); floats are made only at the edge (`px`,
`amt`), rounded to the grid's decimals so they print exactly as Deribit would.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta

from feeder.errors import ConfigError

MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
PERPETUAL_EXPIRY_MS = 32503708800000  # what Deribit reports for perpetuals (year 3000)
REF_PRICE = {"BTC": 90000.0, "ETH": 3000.0}
STRIKE_STEP = {"BTC": 1000, "ETH": 50}
CURRENCY_INFO = {
    "BTC": {"coin_type": "BITCOIN", "currency_long": "Bitcoin", "fee": 0.0001, "decimals": 8},
    "ETH": {"coin_type": "ETHER", "currency_long": "Ethereum", "fee": 0.0006, "decimals": 6},
}
# Currencies Deribit lists without inverse instruments here: get_instruments answers them with [].
OTHER_CURRENCIES = ("USDC", "USDT", "EURR", "SOL", "XRP", "BNB", "PAXG")
DEFAULT_ACTIVE = ("BTC-PERPETUAL", "ETH-PERPETUAL")

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
    settlement_period: str  # "perpetual" | "week" | "month"
    expiry_ms: int
    tick: float  # minimum tick size
    lot: float  # minimum trade amount (USD for futures, coins for options)
    contract_size: int
    ref_price: float
    strike: float | None = None
    option_type: str | None = None  # "call" | "put"
    step_above: float | None = None  # options: price above which the tick is coarser
    step_tick: float | None = None
    tick_decimals: int = field(init=False)
    lot_decimals: int = field(init=False)
    exact: bool = field(init=False)  # tick and lot are dyadic: ticks * tick needs no rounding

    def __post_init__(self) -> None:
        object.__setattr__(self, "tick_decimals", _decimals(self.tick))
        object.__setattr__(self, "lot_decimals", _decimals(self.lot))
        dyadic = all(_is_pow2(x.as_integer_ratio()[1]) for x in (self.tick, self.lot))
        object.__setattr__(self, "exact", dyadic)

    @property
    def index_name(self) -> str:
        return f"{self.base.lower()}_usd"

    @property
    def is_perpetual(self) -> bool:
        return self.settlement_period == "perpetual"

    @property
    def grid(self) -> int:
        """The walk's price step in ticks (coarser for options, so every price is valid at any level)."""
        return round(self.step_tick / self.tick) if self.step_tick else 1

    def px(self, ticks: int) -> float:
        return ticks * self.tick if self.exact else round(ticks * self.tick, self.tick_decimals)

    def amt(self, lots: int) -> float:
        return lots * self.lot if self.exact else round(lots * self.lot, self.lot_decimals)

    def to_ticks(self, price: float) -> int | None:
        """The price in ticks, or None when it is not on this instrument's tick grid."""
        ticks = round(price / self.tick)
        if abs(ticks * self.tick - price) > self.tick * 1e-6:
            return None
        if self.step_above is not None and price > self.step_above + 1e-12 and ticks % self.grid:
            return None
        return ticks

    def to_lots(self, amount: float) -> int | None:
        """The amount in lots, or None when it is not a positive multiple of the minimum amount."""
        lots = round(amount / self.lot)
        if lots <= 0 or abs(lots * self.lot - amount) > self.lot * 1e-6:
            return None
        return lots

    def api_object(self, creation_ms: int) -> dict:
        """The instrument object as public/get_instruments returns it."""
        obj = {
            "tick_size": self.tick,
            "tick_size_steps": (
                [{"above_price": self.step_above, "tick_size": self.step_tick}] if self.step_above else []
            ),
            "taker_commission": 0.0005 if self.kind == "future" else 0.0003,
            "settlement_period": self.settlement_period,
            "settlement_currency": self.base,
            "quote_currency": "USD" if self.kind == "future" else self.base,
            "counter_currency": "USD",
            "price_index": self.index_name,
            "min_trade_amount": self.lot if self.kind == "option" else int(self.lot),
            "maker_commission": 0.0 if self.kind == "future" else 0.0003,
            "kind": self.kind,
            "is_active": True,
            "instrument_name": self.name,
            "instrument_id": self.instrument_id,
            "expiration_timestamp": self.expiry_ms,
            "creation_timestamp": creation_ms,
            "contract_size": self.contract_size,
            "block_trade_tick_size": 0.01 if self.kind == "future" else 0.0001,
            "block_trade_min_trade_amount": 200000 if self.kind == "future" else 25,
            "block_trade_commission": 0.00025,
            "base_currency": self.base,
        }
        if self.kind == "future":
            obj.update(
                instrument_type="reversed",
                future_type="reversed",
                max_leverage=50,
                max_liquidation_commission=0.0075,
            )
        else:
            obj.update(strike=self.strike, option_type=self.option_type, instrument_type="reversed")
        return obj


def currency_object(currency: str) -> dict:
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


def _expiry_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, 8, tzinfo=UTC).timestamp() * 1000)


def _fridays_after(now: datetime, count: int) -> list[date]:
    """The next `count` Friday expiries (08:00 UTC) strictly after `now`."""
    day = now.date()
    days: list[date] = []
    while len(days) < count:
        if day.weekday() == 4 and _expiry_ms(day) > now.timestamp() * 1000:
            days.append(day)
        day += timedelta(days=1)
    return days


def _last_friday(year: int, month: int) -> date:
    nxt = date(year + month // 12, month % 12 + 1, 1)
    day = nxt - timedelta(days=1)
    return day - timedelta(days=(day.weekday() - 4) % 7)


def _month_ends(now: datetime, count: int, months: tuple[int, ...] = tuple(range(1, 13))) -> list[date]:
    days: list[date] = []
    year, month = now.year, now.month
    while len(days) < count:
        day = _last_friday(year, month)
        if month in months and _expiry_ms(day) > now.timestamp() * 1000:
            days.append(day)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return days


def future_expiries(now: datetime) -> list[tuple[date, str]]:
    """Dated futures as Deribit lists them: two weeklies, two monthlies, three quarterlies."""
    found: dict[date, str] = {}
    for day in _month_ends(now, 3, (3, 6, 9, 12)) + _month_ends(now, 2):
        found[day] = "month"
    for day in _fridays_after(now, 2):
        found.setdefault(day, "week")
    return sorted(found.items())


def option_expiries(now: datetime, weeks: int = 3) -> list[tuple[date, str]]:
    found: dict[date, str] = {}
    for day in _month_ends(now, 2, (3, 6, 9, 12)) + _month_ends(now, 2):
        found[day] = "month"
    for day in _fridays_after(now, weeks):
        found.setdefault(day, "week")
    return sorted(found.items())


# --- catalogue ----------------------------------------------------------------------------------


def _future(base: str, day: date | None, period: str) -> Instrument:
    name = f"{base}-PERPETUAL" if day is None else f"{base}-{expiry_code(day)}"
    btc = base == "BTC"
    return Instrument(
        name=name,
        instrument_id=0,
        base=base,
        kind="future",
        settlement_period=period,
        expiry_ms=PERPETUAL_EXPIRY_MS if day is None else _expiry_ms(day),
        tick=0.5 if (btc and day is None) else 2.5 if btc else 0.05,
        lot=10.0 if btc else 1.0,
        contract_size=10 if btc else 1,
        ref_price=REF_PRICE[base] * (1.0 if day is None else 1.01),
    )


def _option_price(base: str, strike: float, call: bool, years: float) -> float:
    """A rough premium in coins: intrinsic plus a bell of time value; only needs to look plausible."""
    spot = REF_PRICE[base]
    intrinsic = max(0.0, (spot - strike) if call else (strike - spot)) / spot
    width = 0.6 * math.sqrt(max(years, 1 / 365))
    time_value = 0.4 * width * math.exp(-(((strike / spot - 1) / (width + 0.02)) ** 2))
    return max(0.01, intrinsic + time_value)


def _option(base: str, day: date, period: str, strike: int, call: bool, now: datetime) -> Instrument:
    years = (_expiry_ms(day) / 1000 - now.timestamp()) / (365 * 86400)
    return Instrument(
        name=f"{base}-{expiry_code(day)}-{strike}-{'C' if call else 'P'}",
        instrument_id=0,
        base=base,
        kind="option",
        settlement_period=period,
        expiry_ms=_expiry_ms(day),
        tick=0.0001,
        lot=0.1 if base == "BTC" else 1.0,
        contract_size=1,
        ref_price=_option_price(base, strike, call, years),
        strike=float(strike),
        option_type="call" if call else "put",
        step_above=0.005,
        step_tick=0.0005,
    )


def _base_catalogue(now: datetime) -> list[Instrument]:
    out: list[Instrument] = [_future(b, None, "perpetual") for b in ("BTC", "ETH")]
    for day, period in future_expiries(now):
        out += [_future(b, day, period) for b in ("BTC", "ETH")]
    for day, period in option_expiries(now, weeks=1)[:3]:
        for base in ("BTC", "ETH"):
            atm = round(REF_PRICE[base] / (STRIKE_STEP[base] * 5)) * STRIKE_STEP[base] * 5
            for k in range(-4, 5):
                strike = atm + k * STRIKE_STEP[base] * 5
                out += [_option(base, day, period, strike, c, now) for c in (True, False)]
    return out


def _extra_options(now: datetime):
    """More options, nearest expiries and strikes first: for `instruments=N` beyond the catalogue."""
    for day, period in option_expiries(now, weeks=12):
        for dist in range(0, 60):
            for base in ("BTC", "ETH"):
                step = STRIKE_STEP[base]
                atm = round(REF_PRICE[base] / step) * step
                for strike in sorted({atm + dist * step, atm - dist * step}):
                    if strike > 0:
                        for call in (True, False):
                            yield _option(base, day, period, strike, call, now)


def parse_name(name: str, now: datetime) -> Instrument | None:
    """An instrument for a well-formed Deribit name with a future expiry, else None."""
    m = _NAME_RE.match(name)
    if not m:
        return None
    base = m["base"]
    if m["perp"]:
        return _future(base, None, "perpetual")
    if m["mon"] not in MONTHS:
        return None
    try:
        day = date(2000 + int(m["yy"]), MONTHS.index(m["mon"]) + 1, int(m["day"]))
    except ValueError:
        return None
    if _expiry_ms(day) <= now.timestamp() * 1000 or name != f"{base}-{expiry_code(day)}" + (
        f"-{m['strike']}-{m['cp']}" if m["strike"] else ""
    ):
        return None
    if m["strike"]:
        return _option(base, day, "week", int(m["strike"]), m["cp"] == "C", now)
    return _future(base, day, "week")


@dataclass(frozen=True)
class Catalogue:
    """Every listed instrument (ids assigned in order) and the active ones that get the update rate."""

    instruments: tuple[Instrument, ...]
    active: tuple[int, ...]  # indexes into instruments
    by_name: dict[str, int]


def build_catalogue(requested: tuple[str, ...] | int, now: datetime | None = None) -> Catalogue:
    """The catalogue for `requested` names (or a count of generated instruments) at `now`."""
    now = now or datetime.now(UTC)
    listed = _base_catalogue(now)
    names = {i.name for i in listed}
    if isinstance(requested, int):
        if not 1 <= requested <= 5000:
            raise ConfigError("instruments", requested, "a count must be between 1 and 5000")
        extra = _extra_options(now)
        while len(listed) < requested:
            inst = next(extra)
            if inst.name not in names:
                names.add(inst.name)
                listed.append(inst)
        wanted = [i.name for i in listed[:requested]]
    else:
        wanted = list(dict.fromkeys(requested))
        if not wanted:
            raise ConfigError("instruments", requested, "give at least one instrument name or a count")
        for name in wanted:
            if name not in names:
                inst = parse_name(name, now)
                if inst is None:
                    raise ConfigError(
                        "instruments",
                        name,
                        "expected a Deribit name with a future expiry, such as BTC-PERPETUAL, "
                        f"BTC-{expiry_code(_fridays_after(now, 1)[0])} or ETH-{expiry_code(_fridays_after(now, 1)[0])}-3000-C",
                    )
                names.add(name)
                listed.append(inst)
    numbered = tuple(replace(inst, instrument_id=100001 + n) for n, inst in enumerate(listed))
    by_name = {inst.name: n for n, inst in enumerate(numbered)}
    return Catalogue(numbered, tuple(by_name[n] for n in wanted), by_name)
