"""The option model: Black-76 on the forward, a volatility smile, greeks and implied volatility.

Pure math on floats. Conventions are Deribit's: the interest rate is 0 (so no discounting), the
forward is the index carried at `CARRY` a year to the expiry (what `underlying_price` says), an
option is worth its USD Black-76 value divided by the forward, in coins (BTC or ETH), and IVs
are given in percent by tickers (`mark_iv` 51.2) and as fractions by `markprice.options` (0.512).
Greeks are those of the USD value: delta per 1 USD of the underlying (calls 0..1, puts -1..0),
gamma per USD, vega in USD per volatility point (1 %), theta in USD per calendar day, rho in USD
per rate point (1 %). Years are calendar days / 365, as on Deribit.
"""

from __future__ import annotations

import math

from feeder.sim.clock import DAY_MS

YEAR_MS = 365 * DAY_MS
MIN_YEARS = 60_000 / YEAR_MS  # a minute: an option about to expire still has a value and greeks
CARRY = 0.05
ATM_VOL = {"BTC": 0.50, "ETH": 0.65}
MIN_VOL, MAX_VOL = 0.05, 5.0
_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def years(expiry_ms: int, now_ms: int) -> float:
    return max(MIN_YEARS, (expiry_ms - now_ms) / YEAR_MS)


def forward(index: float, t: float) -> float:
    return index * math.exp(CARRY * t)


def smile(base: str, fwd: float, strike: float, t: float) -> float:
    """The model's volatility: richer at short expiries, a put skew and wings that rise."""
    atm = ATM_VOL[base] * (1.0 + 0.25 * math.exp(-12.0 * t))
    x = max(-4.0, min(4.0, math.log(strike / fwd) / math.sqrt(t)))
    return max(MIN_VOL, min(MAX_VOL, atm * (1.0 - 0.08 * x + 0.05 * x * x)))


def _n(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / _SQRT2))


def _d1(fwd: float, strike: float, t: float, vol: float) -> tuple[float, float]:
    sd = vol * math.sqrt(t)
    return (math.log(fwd / strike) + 0.5 * sd * sd) / sd, sd


def value(fwd: float, strike: float, t: float, vol: float, call: bool) -> float:
    """The USD value."""
    d1, sd = _d1(fwd, strike, t, vol)
    if call:
        return fwd * _n(d1) - strike * _n(d1 - sd)
    return strike * _n(sd - d1) - fwd * _n(-d1)


def greeks(fwd: float, strike: float, t: float, vol: float, call: bool) -> dict[str, float]:
    d1, sd = _d1(fwd, strike, t, vol)
    pdf = math.exp(-0.5 * d1 * d1) * _INV_SQRT_2PI
    root = math.sqrt(t)
    d2 = d1 - sd
    return {
        "delta": _n(d1) if call else _n(d1) - 1.0,
        "gamma": pdf / (fwd * sd),
        "vega": fwd * pdf * root / 100.0,
        "theta": -fwd * pdf * vol / (2.0 * root) / 365.0,
        "rho": (strike * t * _n(d2) if call else -strike * t * _n(-d2)) / 100.0,
    }


def implied_vol(usd: float, fwd: float, strike: float, t: float, call: bool, guess: float) -> float | None:
    """The volatility that gives `usd`, or None when no volatility can (at or below intrinsic value,
    or above the forward for a call or the strike for a put). Newton from `guess`, bisection when
    Newton leaves the bracket."""
    intrinsic = max(0.0, fwd - strike) if call else max(0.0, strike - fwd)
    if usd <= intrinsic or usd >= (fwd if call else strike):
        return None
    low, high, vol = MIN_VOL / 5, MAX_VOL * 2, guess
    for _ in range(40):
        diff = value(fwd, strike, t, vol, call) - usd
        if abs(diff) < 1e-10 * fwd or high - low < 1e-9:
            return vol
        if diff > 0:
            high = vol
        else:
            low = vol
        d1, _ = _d1(fwd, strike, t, vol)
        vega = fwd * math.exp(-0.5 * d1 * d1) * _INV_SQRT_2PI * math.sqrt(t)
        step = vol - diff / vega if vega > 1e-12 else low - 1.0
        vol = step if low < step < high else 0.5 * (low + high)
    return vol
