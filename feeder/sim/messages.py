"""What the simulator says: notification payloads and result objects, shaped as Deribit's.

Pure functions from state to JSON-ready dicts (or encoded frames for the hot path). Field names,
order and types follow the official examples in reference/deribit/ (the tests check them).
"""

from __future__ import annotations

from typing import Any

import orjson

from feeder.sim.book import Entry
from feeder.sim.instruments import Instrument
from feeder.sim.market import BookChange, InstrumentState, TradePrint
from feeder.sim.marks import Marks, Quote
from feeder.sim.matching import Order


def envelope(channel: str) -> bytes:
    """The bytes of a `subscription` notification on `channel` up to its data (close with b"}}")."""
    return (
        b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":' + orjson.dumps(channel) + b',"data":'
    )


def subscription(channel: str, data: object) -> bytes:
    """A `subscription` notification, encoded."""
    return envelope(channel) + orjson.dumps(data) + b"}}"


def entries(inst: Instrument, items: list[Entry]) -> list[list[str | float]]:
    """[action, price, amount] lists (delete amounts are 0.0)."""
    tick, lot = inst.tick, inst.lot
    if inst.exact:
        return [[a, p * tick, q * lot] for a, p, q in items]
    td, ld = inst.tick_decimals, inst.lot_decimals
    return [[a, round(p * tick, td), round(q * lot, ld)] for a, p, q in items]


def book_change(inst: Instrument, change: BookChange) -> dict[str, Any]:
    return {
        "type": "change",
        "timestamp": change.ts_ms,
        "prev_change_id": change.prev,
        "instrument_name": inst.name,
        "change_id": change.change_id,
        "bids": entries(inst, change.bids),
        "asks": entries(inst, change.asks),
    }


def book_aggregate(
    inst: Instrument, ts_ms: int, prev: int, change_id: int, bids: list[Entry], asks: list[Entry]
) -> dict[str, Any]:
    return {
        "type": "change",
        "timestamp": ts_ms,
        "prev_change_id": prev,
        "instrument_name": inst.name,
        "change_id": change_id,
        "bids": entries(inst, bids),
        "asks": entries(inst, asks),
    }


def book_snapshot(st: InstrumentState, ts_ms: int) -> dict[str, Any]:
    inst = st.inst
    px, amt = inst.px, inst.amt
    return {
        "type": "snapshot",
        "timestamp": ts_ms,
        "instrument_name": inst.name,
        "change_id": st.change_id,
        "bids": [["new", px(p), amt(q)] for p, q in st.book.bids.levels()],
        "asks": [["new", px(p), amt(q)] for p, q in st.book.asks.levels()],
    }


def grouped(st: InstrumentState, group: str, depth: int, ts_ms: int) -> dict[str, Any]:
    """book.{inst}.{group}.{depth}.{interval}: [price, amount] pairs, bids rounded down, asks up."""
    inst = st.inst
    return {
        "timestamp": ts_ms,
        "instrument_name": inst.name,
        "change_id": st.change_id,
        "bids": _group(inst, st.book.bids.levels(), group, depth, True),
        "asks": _group(inst, st.book.asks.levels(), group, depth, False),
    }


def _group(
    inst: Instrument, levels: list[tuple[int, int]], group: str, depth: int, is_bid: bool
) -> list[list[float]]:
    if group == "none":
        return [[inst.px(p), inst.amt(q)] for p, q in levels[:depth]]
    size = float(group)
    buckets: dict[float, float] = {}
    for p, q in levels:
        price = inst.px(p)
        key = (price // size) * size if is_bid else -((-price) // size) * size
        if key not in buckets and len(buckets) == depth:
            break
        buckets[key] = buckets.get(key, 0.0) + inst.amt(q)
    return [[k, round(v, inst.lot_decimals)] for k, v in buckets.items()]


def quote(st: InstrumentState, ts_ms: int) -> dict[str, Any]:
    bid, ask = st.book.bids.best(), st.book.asks.best()
    inst = st.inst
    return {
        "timestamp": ts_ms,
        "instrument_name": inst.name,
        "best_bid_price": inst.px(bid) if bid is not None else 0.0,
        "best_bid_amount": inst.amt(st.book.bids.lots[bid]) if bid is not None else 0.0,
        "best_ask_price": inst.px(ask) if ask is not None else 0.0,
        "best_ask_amount": inst.amt(st.book.asks.lots[ask]) if ask is not None else 0.0,
    }


def mark_price(st: InstrumentState) -> float:
    """Futures: the book's mid. Options: the model's mark (marks.py), once it was quoted."""
    if st.model is not None:
        return st.model[1].mark
    return round(st.mid_ticks() * st.inst.tick, st.inst.tick_decimals)


def ticker(st: InstrumentState, index_price: float, ts_ms: int, marks: Marks) -> dict[str, Any]:
    """A ticker; options add the model's greeks and IVs (bid_iv / ask_iv: those of the book's best
    prices, 0 without one). An instrument out of trading says so in `state`; once settled its
    settlement_price is the delivery and estimated_delivery_price is "expired", as on Deribit."""
    inst = st.inst
    option = inst.kind == "option"
    q = marks.quote(st) if option else None
    mark = q.mark if q is not None else mark_price(st)
    last = inst.px(st.last_trade) if st.last_trade is not None else mark
    settled = st.settlement is not None
    data = {
        **quote(st, ts_ms),
        "state": st.book_state,
        "settlement_price": mark if option or not settled else st.settlement,
        "open_interest": float(st.open_interest) if not option else inst.amt(st.open_interest),
        "min_price": _band(inst, mark, -1),
        "max_price": _band(inst, mark, 1),
        "mark_price": mark,
        "last_price": last,
        "index_price": index_price,
        "estimated_delivery_price": "expired" if settled else index_price,
        "stats": _stats(st, last),
    }
    if inst.is_perpetual:
        data.update(current_funding=0.0, funding_8h=2.1e-05, interest_value=1.7362511643080387)
    if q is not None:
        data.update(
            underlying_price=q.forward,
            underlying_index=q.underlying,
            interest_rate=0.0,
            bid_iv=marks.iv(st, data["best_bid_price"]),
            ask_iv=marks.iv(st, data["best_ask_price"]),
            mark_iv=round(q.vol * 100, 2),
            greeks=q.greeks,
        )
    return data


def _band(inst: Instrument, mark: float, sign: int) -> float:
    """min_price / max_price: 2.5 % around the mark for futures; wider for options, never below a tick."""
    if inst.kind == "future":
        return round(mark * (1 + 0.025 * sign), inst.tick_decimals)
    return round(max(inst.tick, mark + sign * max(0.005, 0.5 * mark)), inst.tick_decimals)


def _stats(st: InstrumentState, last: float) -> dict[str, Any]:
    inst = st.inst
    volume = inst.amt(st.volume_lots)
    return {
        "high": inst.px(st.high) if st.high is not None else last,
        "low": inst.px(st.low) if st.low is not None else last,
        "price_change": 0.0,
        "volume": round(volume / last, 8) if inst.kind == "future" and last else volume,
        "volume_usd": volume if inst.kind == "future" else round(volume * last, 2),
    }


def public_trade(
    st: InstrumentState, tp: TradePrint, index_price: float, marks: Marks | None = None
) -> dict[str, Any]:
    """A public trade; an option's carries `iv`, the implied volatility of its price (given `marks`)."""
    inst = st.inst
    price = inst.px(tp.price)
    out: dict[str, Any] = {
        "trade_seq": tp.trade_seq,
        "trade_id": tp.trade_id,
        "timestamp": tp.ts_ms,
        "tick_direction": tp.tick_direction,
        "price": price,
        "mark_price": mark_price(st),
        "instrument_name": inst.name,
        "index_price": index_price,
        "direction": "buy" if tp.is_buy else "sell",
        "amount": inst.amt(tp.lots),
    }
    if marks is not None and inst.kind == "option":
        out["iv"] = marks.iv(st, price)
    return out


def user_trade(st: InstrumentState, tp: TradePrint, order: Order, index_price: float) -> dict[str, Any]:
    inst = st.inst
    taker = order is tp.taker
    price = inst.px(tp.price)
    fee_rate = 0.0005 if taker else 0.0
    amount = inst.amt(tp.lots)
    fee = amount / price * fee_rate if inst.kind == "future" else amount * 0.0003
    return {
        **public_trade(st, tp, index_price),
        "state": order.state,
        "reduce_only": order.reduce_only,
        "post_only": order.post_only,
        "order_type": order.order_type,
        "order_id": order.order_id,
        "matching_id": None,
        "liquidity": "T" if taker else "M",
        "fee_currency": inst.base,
        "fee": round(fee, 8),
        "direction": "buy" if order.is_buy else "sell",
        "label": order.label,
        "api": order.api,
    }


def order_object(inst: Instrument, order: Order) -> dict[str, Any]:
    avg = round(order.value / order.filled * inst.tick, inst.tick_decimals) if order.filled else 0.0
    obj = {
        "web": False,
        "time_in_force": order.tif,
        "replaced": False,
        "reduce_only": order.reduce_only,
        "price": inst.px(order.price) if order.price is not None else "market_price",
        "post_only": order.post_only,
        "reject_post_only": order.reject_post_only,
        "order_type": order.order_type,
        "order_state": order.state,
        "order_id": order.order_id,
        "max_show": inst.amt(order.lots),
        "last_update_timestamp": order.updated_ms,
        "label": order.label,
        "is_rebalance": False,
        "is_liquidation": False,
        "instrument_name": inst.name,
        "filled_amount": inst.amt(order.filled),
        "direction": "buy" if order.is_buy else "sell",
        "creation_timestamp": order.created_ms,
        "average_price": avg,
        "api": order.api,
        "amount": inst.amt(order.lots),
        "contracts": float(order.lots * inst.lot / inst.contract_size),
        "mmp": False,
        "risk_reducing": False,
    }
    if order.order_type == "market":
        obj["original_order_type"] = "market"
    if order.cancel_reason is not None:
        obj["cancel_reason"] = order.cancel_reason
    return obj


def index(name: str, price: float, ts_ms: int) -> dict[str, Any]:
    return {"index_name": name, "price": price, "timestamp": ts_ms}


def markprice_item(inst: Instrument, q: Quote, ts_ms: int) -> dict[str, Any]:
    """One option of a markprice.options notification (iv as a fraction, unlike tickers)."""
    return {"timestamp": ts_ms, "mark_price": q.mark, "iv": round(q.vol, 4), "instrument_name": inst.name}


def instrument_state(name: str, state: str, ts_ms: int) -> dict[str, Any]:
    return {"timestamp": ts_ms, "state": state, "instrument_name": name}


def book_summary(st: InstrumentState, index_price: float, marks: Marks) -> dict[str, Any]:
    """public/get_book_summary_by_*: one instrument (null where there is no bid, ask or trade)."""
    inst = st.inst
    bid, ask = st.book.bids.best(), st.book.asks.best()
    option = inst.kind == "option"
    q = marks.quote(st) if option else None
    mark = q.mark if q is not None else mark_price(st)
    volume = inst.amt(st.volume_lots)
    out = {
        "volume_usd": round(volume * (1.0 if not option else mark * index_price), 2),
        "volume": volume if option else round(volume / mark, 8) if mark else 0.0,
        "quote_currency": inst.base if option else "USD",
        "price_change": 0.0,
        "open_interest": inst.amt(st.open_interest) if option else float(st.open_interest),
        "mid_price": (
            round((inst.px(bid) + inst.px(ask)) / 2, inst.tick_decimals + 1)
            if bid is not None and ask is not None
            else None
        ),
        "mark_price": mark,
        "low": inst.px(st.low) if st.low is not None else None,
        "last": inst.px(st.last_trade) if st.last_trade is not None else None,
        "instrument_name": inst.name,
        "high": inst.px(st.high) if st.high is not None else None,
        "estimated_delivery_price": index_price,
        "creation_timestamp": inst.creation_ms,
        "bid_price": inst.px(bid) if bid is not None else None,
        "base_currency": inst.base,
        "ask_price": inst.px(ask) if ask is not None else None,
    }
    if inst.is_perpetual:
        out.update(funding_8h=2.1e-05, current_funding=0.0)
    if q is not None:
        out.update(
            mark_iv=round(q.vol * 100, 2),
            interest_rate=0.0,
            underlying_index=q.underlying,
            underlying_price=q.forward,
        )
    return out
