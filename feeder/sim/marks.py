"""Option marks: the model's view of every option at the exchange's current time and index.

Pure. `reprice(now_ms, index)` starts a new epoch (the server calls it once a second and after the
clock jumps); `quote(st)` is the option's mark price, mark IV, greeks, forward and underlying for
the epoch, computed once per epoch and option; `iv(st, ticks)` the implied volatility of a book
price (for bid_iv / ask_iv), cached per epoch and price, so a ticker costs dictionary lookups once
its option was quoted. An option that settled is quoted at its settlement value with zero greeks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from feeder.sim import pricing
from feeder.sim.instruments import Instrument, expiry_code, to_date

if TYPE_CHECKING:
    from feeder.sim.market import InstrumentState

GREEKS_ZERO = {"delta": 0.0, "gamma": 0.0, "vega": 0.0, "theta": 0.0, "rho": 0.0}


@dataclass(frozen=True, slots=True)
class Quote:
    mark: float  # coins, on 4 decimals as Deribit marks
    vol: float  # fraction
    greeks: dict[str, float]
    forward: float
    underlying: str  # the future of the same expiry, or SYN.<base>-<date> when none is listed
    years: float


class Marks:
    def __init__(self, future_listed: Callable[[str], bool]):
        self.epoch = 0
        self.now_ms = 0
        self.index: dict[str, float] = {}
        self._future_listed = future_listed  # name -> bool: is that future listed (the underlying)?

    def reprice(self, now_ms: int, index: dict[str, float]) -> None:
        self.epoch += 1
        self.now_ms, self.index = now_ms, index

    def quote(self, st: InstrumentState) -> Quote:
        cached = st.model
        if cached is not None and cached[0] == self.epoch:
            return cached[1]
        quote = self._settled(st) if st.settlement is not None else self._live(st.inst)
        st.model = (self.epoch, quote)
        st.ivs = {}
        return quote

    def _live(self, inst: Instrument) -> Quote:
        assert inst.strike is not None
        t = pricing.years(inst.expiry_ms, self.now_ms)
        fwd = pricing.forward(self.index[inst.base], t)
        vol = pricing.smile(inst.base, fwd, inst.strike, t)
        call = inst.option_type == "call"
        usd = pricing.value(fwd, inst.strike, t, vol, call)
        greeks = {k: round(v, 5) for k, v in pricing.greeks(fwd, inst.strike, t, vol, call).items()}
        return Quote(round(usd / fwd, 4), vol, greeks, round(fwd, 2), self.underlying(inst), t)

    def _settled(self, st: InstrumentState) -> Quote:
        inst, price = st.inst, st.settlement
        assert inst.strike is not None and price
        usd = max(0.0, (price - inst.strike) if inst.option_type == "call" else (inst.strike - price))
        return Quote(round(usd / price, 4), 0.0, dict(GREEKS_ZERO), price, self.underlying(inst), 0.0)

    def underlying(self, inst: Instrument) -> str:
        name = f"{inst.base}-{expiry_code(to_date(inst.expiry_ms).date())}"
        return name if self._future_listed(name) else f"SYN.{name}"

    def iv(self, st: InstrumentState, price: float | None) -> float:
        """The implied volatility (percent, 2 decimals) of `price` (coins); 0.0 when none fits."""
        if price is None or price <= 0:
            return 0.0
        quote = self.quote(st)
        ivs = st.ivs
        found = ivs.get(price)
        if found is None:
            if not quote.years or st.settlement is not None:
                found = 0.0
            else:
                inst = st.inst
                assert inst.strike is not None
                usd = price * quote.forward
                vol = pricing.implied_vol(
                    usd, quote.forward, inst.strike, quote.years, inst.option_type == "call", quote.vol
                )
                found = 0.0 if vol is None else round(vol * 100, 2)
            ivs[price] = found
        return found
