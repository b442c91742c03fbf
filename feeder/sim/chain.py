"""What Deribit lists at a given time: the expiry schedule and the strikes of each option expiry.

Pure: a function of the time and the index. Option expiries come in four classes (a date takes the
highest class it belongs to): the next 4 days (dailies, settlement period `day`), the next 4 Fridays
(`week`), the last Fridays of the next 3 months (`month`) and of the next 4 quarter months
(quarterlies, also `month`). Each class has Deribit's strike spacing and width around the money
(BTC: 500/1000/2000/5000 USD apart; ETH: 25/50/100/200), which gives a full chain of ~690 BTC and
~430 ETH options. Futures: a perpetual, two weeklies, two monthlies and three quarterlies.

`ChainSize` cuts the chain down for tests: the nearest `expiries` option expiries and, in each,
the `strikes` strikes nearest the money (None: all of them). As the clock passes an 08:00 UTC the
schedule moves on: expired dates leave it and new ones come in, listed around the index of then.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta

from feeder.sim.clock import DAY_MS, next_expiry_hour
from feeder.sim.instruments import Instrument, expiry_ms, future, last_friday, option, to_date

BASES = ("BTC", "ETH")
RANK = {"day": 0, "week": 1, "month": 2, "quarter": 3}
# strike spacing (USD) and strikes on each side of the money, per currency and expiry class
STRIKES = {
    "BTC": {"day": (500, 12), "week": (1000, 15), "month": (2000, 15), "quarter": (5000, 14)},
    "ETH": {"day": (25, 8), "week": (50, 10), "month": (100, 10), "quarter": (200, 7)},
}


@dataclass(frozen=True)
class ChainSize:
    expiries: int | None = 3  # the nearest N option expiries of each currency; None: all listed
    strikes: int | None = 9  # strikes per expiry, nearest the money first; None: Deribit's width


@dataclass(frozen=True)
class Expiry:
    day: date
    cls: str  # day | week | month | quarter

    @property
    def period(self) -> str:
        return "month" if self.cls == "quarter" else self.cls

    @property
    def ms(self) -> int:
        return expiry_ms(self.day)


def _fridays(after: date, count: int) -> list[date]:
    day = after + timedelta(days=(4 - after.weekday()) % 7)
    return [day + timedelta(weeks=n) for n in range(count)]


def _month_ends(first: date, count: int, months: tuple[int, ...]) -> list[date]:
    out: list[date] = []
    year, month = first.year, first.month
    while len(out) < count:
        day = last_friday(year, month)
        if month in months and day >= first:
            out.append(day)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def _first_day(now_ms: int) -> date:
    """The first date whose 08:00 UTC expiry is still ahead of `now_ms`."""
    day = to_date(now_ms).date()
    return day if expiry_ms(day) > now_ms else day + timedelta(days=1)


def option_expiries(now_ms: int) -> list[Expiry]:
    """Every option expiry Deribit lists at `now_ms`, nearest first."""
    first = _first_day(now_ms)
    classes: dict[date, str] = {}
    for cls, days in (
        ("day", [first + timedelta(days=n) for n in range(4)]),
        ("week", _fridays(first, 4)),
        ("month", _month_ends(first, 3, tuple(range(1, 13)))),
        ("quarter", _month_ends(first, 4, (3, 6, 9, 12))),
    ):
        for day in days:
            if day not in classes or RANK[cls] > RANK[classes[day]]:
                classes[day] = cls
    return [Expiry(day, classes[day]) for day in sorted(classes)]


def future_expiries(now_ms: int) -> list[Expiry]:
    """Dated futures as Deribit lists them: two weeklies, two monthlies, three quarterlies."""
    first = _first_day(now_ms)
    found: dict[date, str] = {}
    for day in _month_ends(first, 3, (3, 6, 9, 12)):
        found[day] = "quarter"
    for day in _month_ends(first, 2, tuple(range(1, 13))):
        found.setdefault(day, "month")
    for day in _fridays(first, 2):
        found.setdefault(day, "week")
    return [Expiry(day, found[day]) for day in sorted(found)]


def strikes(base: str, cls: str, index: float, limit: int | None) -> list[int]:
    """The strikes of an expiry of class `cls` listed around `index`, ascending."""
    step, width = STRIKES[base][cls]
    atm = round(index / step) * step
    near = [atm + k * step for k in sorted(range(-width, width + 1), key=lambda k: (abs(k), k))]
    near = [k for k in near if k > 0]
    return sorted(near if limit is None else near[:limit])


def listing(now_ms: int, index: dict[str, float], size: ChainSize, created_ms: int) -> list[Instrument]:
    """Every instrument listed at `now_ms`: perpetuals, dated futures, then the option chain."""
    out = [future(b, None, "perpetual", now_ms, index[b], created_ms) for b in BASES]
    for exp in future_expiries(now_ms):
        out += [future(b, exp.day, exp.period, now_ms, index[b], created_ms) for b in BASES]
    expiries = option_expiries(now_ms)
    for exp in expiries if size.expiries is None else expiries[: size.expiries]:
        for base in BASES:
            for strike in strikes(base, exp.cls, index[base], size.strikes):
                out += [
                    option(base, exp.day, exp.period, strike, call, now_ms, index[base], created_ms)
                    for call in (True, False)
                ]
    return out


def extra_options(now_ms: int, index: dict[str, float]) -> Iterator[Instrument]:
    """More options beyond any listing, nearest expiries and strikes first (for a count of instruments)."""
    for exp in option_expiries(now_ms):
        for dist in range(0, 200):
            for base in BASES:
                step = STRIKES[base][exp.cls][0]
                atm = round(index[base] / step) * step
                for strike in sorted({atm - dist * step, atm + dist * step}):
                    if strike > 0:
                        for call in (True, False):
                            yield option(base, exp.day, exp.period, strike, call, now_ms, index[base], now_ms)


def listing_day(now_ms: int) -> int:
    """The 08:00 UTC at or before `now_ms`: when the instruments listed at `now_ms` were created."""
    return next_expiry_hour(now_ms) - DAY_MS
