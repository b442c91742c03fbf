"""Feeds about a whole market rather than one instrument: the index, option marks, instrument
states and the platform state.

- `deribit_price_index.{index}`: the index price, on subscribe and once a second.
- `markprice.options.{index}`: one message with the mark price and IV (a fraction) of every
  option of the index that trades, on subscribe and once a second.
- `instrument.state.{kind}.{currency}`: `{timestamp, state, instrument_name}` whenever an
  instrument of that kind and currency changes state (created, started, settled, closed,
  terminated: lifecycle.py); nothing on subscribe.
- `platform_state`: `{price_index, locked}` when a currency is locked or unlocked; nothing on
  subscribe (public/status tells the current state).
"""

from __future__ import annotations

from typing import Any

from feeder.sim import messages as msg
from feeder.sim.feeds import Feed
from feeder.sim.instruments import Instrument
from feeder.sim.session import Session


class Index(Feed):
    index_driven = True

    def _data(self, ts_ms: int) -> dict[str, Any]:
        base = self.spec.index_name.split("_")[0].upper()
        return msg.index(self.spec.index_name, self.hub.market.index_price(base), ts_ms)

    def on_add(self, s: Session) -> None:
        self.hub.queue(s, self.frame(self._data(self.hub.now_ms())))

    def on_index(self, ts_ms: int) -> None:
        self.broadcast(self._data(ts_ms))


class MarkPrice(Feed):
    index_driven = True

    def _data(self, ts_ms: int) -> list[dict[str, Any]]:
        market = self.hub.market
        base = self.spec.index_name.split("_")[0].upper()
        return [
            msg.markprice_item(st.inst, market.marks.quote(st), ts_ms)
            for st in market.states
            if st.trading and st.inst.kind == "option" and st.inst.base == base
        ]

    def on_add(self, s: Session) -> None:
        self.hub.queue(s, self.frame(self._data(self.hub.now_ms())))

    def on_index(self, ts_ms: int) -> None:
        self.broadcast(self._data(ts_ms))


class InstrumentStates(Feed):
    def matches(self, inst: Instrument) -> bool:
        return self.spec.inst_kind == inst.kind and self.spec.currency in ("any", inst.base)

    def on_state(self, inst: Instrument, state: str, ts_ms: int) -> None:
        if self.matches(inst):
            self.broadcast(msg.instrument_state(inst.name, state, ts_ms))


class PlatformState(Feed):
    def on_platform(self, data: dict[str, Any]) -> None:
        self.broadcast(data)
