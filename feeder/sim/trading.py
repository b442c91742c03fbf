"""The private trading methods: orders, cancels, positions, cancel-on-disconnect, user trades.

Request in, result out, with the side effects published through the hub (book changes, public
trades, user.orders and user.trades notifications). Orders belong to an account (client_id) and
remember the connection that created it, for cancel-on-disconnect. Only `limit` and `market` orders
are simulated; other types are refused with -32602 naming the type.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from feeder.sim import messages as msg
from feeder.sim.hub import Hub
from feeder.sim.market import BookChange, InstrumentState, Market, TradePrint
from feeder.sim.matching import Order
from feeder.sim.rpc import RpcError, invalid
from feeder.sim.session import Session

USER_TRADES_KEPT = 1000
CLOSED_ORDERS_KEPT = 10_000


@dataclass
class Caller:
    """Who is calling a private method."""

    account: str
    session: Session | None  # None over HTTP
    ts_ms: int
    after: list[Callable[[], None]] = field(default_factory=list)


class Trading:
    def __init__(self, market: Market, hub: Hub):
        self.market, self.hub = market, hub
        self.positions: dict[tuple[str, int], list[int]] = {}  # (account, inst) -> [signed lots, value]
        self.user_trades: dict[str, deque[dict[str, Any]]] = defaultdict(
            lambda: deque(maxlen=USER_TRADES_KEPT)
        )
        self.cod_account: dict[str, bool] = {}
        self._closed: deque[str] = deque()

    def handlers(self) -> dict[str, Callable[[Caller, dict[str, Any]], Any]]:
        return {
            "private/buy": lambda c, p: self.order(c, p, True),
            "private/sell": lambda c, p: self.order(c, p, False),
            "private/edit": self.edit,
            "private/cancel": self.cancel,
            "private/cancel_all": lambda c, p: self.cancel_where(c, lambda o: True),
            "private/cancel_all_by_instrument": self.cancel_all_by_instrument,
            "private/cancel_all_by_currency": self.cancel_all_by_currency,
            "private/cancel_by_label": self.cancel_by_label,
            "private/get_open_orders": self.get_open_orders,
            "private/get_open_orders_by_instrument": self.get_open_orders_by_instrument,
            "private/get_open_orders_by_label": self.get_open_orders_by_label,
            "private/get_order_state": self.get_order_state,
            "private/get_order_state_by_label": self.get_order_state_by_label,
            "private/get_position": self.get_position,
            "private/get_positions": self.get_positions,
            "private/enable_cancel_on_disconnect": lambda c, p: self.set_cod(c, p, True),
            "private/disable_cancel_on_disconnect": lambda c, p: self.set_cod(c, p, False),
            "private/get_cancel_on_disconnect": self.get_cod,
            "private/get_user_trades_by_instrument": self.get_user_trades_by_instrument,
        }

    # --- placing and changing orders ---------------------------------------------------------------

    def _state(self, name: str, code: int = 10020) -> InstrumentState:
        idx = self.market.catalogue.by_name.get(name)
        if idx is None:
            raise RpcError(code, {"param": "instrument_name", "reason": f"unknown instrument {name!r}"})
        return self.market.states[idx]

    def _tradable(self, st: InstrumentState) -> InstrumentState:
        """An instrument that takes new orders and edits (10012 after it settled or closed, 10019 while
        its currency is locked)."""
        if not st.trading:
            raise RpcError(10012, {"reason": f"the book of {st.inst.name} is {st.status}"})
        if st.inst.base in self.market.locked:
            raise RpcError(10019, {"reason": f"{st.inst.base} is locked"})
        return st

    def _lots(self, st: InstrumentState, p: dict[str, Any]) -> int:
        amount = p.get("amount")
        if amount is None and p.get("contracts") is not None:
            amount = p["contracts"] * st.inst.contract_size * (1 if st.inst.kind == "future" else st.inst.lot)
        if amount is None:
            raise invalid("amount", "value required (or contracts)")
        lots = st.inst.to_lots(amount)
        if lots is None:
            raise invalid("amount", f"must be a positive multiple of {st.inst.lot:g}")
        return lots

    def _ticks(self, st: InstrumentState, price: Any) -> int:
        if price is None:
            raise invalid("price", "value required for a limit order")
        ticks = st.inst.to_ticks(price) if price > 0 else None
        if ticks is None or ticks <= 0:
            raise RpcError(
                10043, {"param": "price", "reason": f"must be a positive multiple of {st.inst.tick:g}"}
            )
        return ticks

    def order(self, c: Caller, p: dict[str, Any], is_buy: bool) -> dict[str, Any]:
        st = self._tradable(self._state(p["instrument_name"]))
        kind = p.get("type", "limit")
        if kind not in ("limit", "market"):
            raise invalid("type", f"{kind!r} orders are not simulated: use limit or market")
        lots = self._lots(st, p)
        price = self._ticks(st, p.get("price")) if kind == "limit" else None
        order = Order(
            order_id=self.market.new_order_id(st.inst.base),
            account=c.account,
            conn=c.session.id if c.session is not None else 0,
            inst=st.index,
            is_buy=is_buy,
            price=price,
            lots=lots,
            label=p.get("label", ""),
            order_type=kind,
            tif=p.get("time_in_force", "good_til_cancelled"),
            post_only=bool(p.get("post_only", False)),
            reject_post_only=bool(p.get("reject_post_only", False)),
            reduce_only=bool(p.get("reduce_only", False)),
            created_ms=c.ts_ms,
        )
        change, prints = self.market.place(order, c.ts_ms)
        self._after(c, change, [order], prints)
        return self._with_trades(c, st, order, prints)

    def edit(self, c: Caller, p: dict[str, Any]) -> dict[str, Any]:
        order = self._own(c, p["order_id"])
        st = self._tradable(self.market.states[order.inst])
        if order.state != "open" or order.price is None:
            raise RpcError(11044, {"reason": f"order {order.order_id} is {order.state}"})
        lots = self._lots(st, p) if ("amount" in p or "contracts" in p) else order.lots
        price = self._ticks(st, p["price"]) if "price" in p else order.price
        order.post_only = bool(p.get("post_only", order.post_only))
        order.reject_post_only = bool(p.get("reject_post_only", order.reject_post_only))
        change, prints = self.market.edit(order, lots, price, c.ts_ms)
        self._after(c, change, [order], prints)
        return self._with_trades(c, st, order, prints)

    def cancel(self, c: Caller, p: dict[str, Any]) -> dict[str, Any]:
        order = self._own(c, p["order_id"])
        change = self.market.cancel(order, "user_request", c.ts_ms)
        self._after(c, change, [order], [])
        return msg.order_object(self.market.states[order.inst].inst, order)

    def cancel_where(self, c: Caller, keep: Callable[[Order], bool], reason: str = "user_request") -> int:
        orders = [o for o in self.market.open_orders(c.account) if keep(o)]
        for order in orders:
            change = self.market.cancel(order, reason, c.ts_ms)
            self._after(c, change, [order], [])
        return len(orders)

    def cancel_connection(self, session: Session, ts_ms: int) -> int:
        """Cancel-on-disconnect: the open orders created on `session`."""
        if session.account is None:
            return 0
        caller = Caller(session.account, None, ts_ms)
        count = self.cancel_where(caller, lambda o: o.conn == session.id, "cancel_on_disconnect")
        for action in caller.after:
            action()
        return count

    def cancel_all_by_instrument(self, c: Caller, p: dict[str, Any]) -> int:
        st = self._state(p["instrument_name"])
        return self.cancel_where(c, lambda o: o.inst == st.index)

    def cancel_all_by_currency(self, c: Caller, p: dict[str, Any]) -> int:
        kind = p.get("kind", "any")
        return self.cancel_where(c, lambda o: self._in(o, p["currency"], kind))

    def cancel_by_label(self, c: Caller, p: dict[str, Any]) -> int:
        currency = p.get("currency")
        return self.cancel_where(c, lambda o: o.label == p["label"] and self._in(o, currency, "any"))

    def _in(self, order: Order, currency: str | None, kind: str | None) -> bool:
        inst = self.market.states[order.inst].inst
        return currency in (None, "any", inst.base) and kind in (None, "any", inst.kind)

    def _own(self, c: Caller, order_id: str) -> Order:
        order = self.market.orders.get(order_id)
        if order is None or order.account != c.account:
            raise RpcError(10004, {"param": "order_id", "reason": f"no order {order_id!r} on this account"})
        return order

    def _after(
        self, c: Caller, change: BookChange | None, orders: list[Order], prints: list[TradePrint]
    ) -> None:
        """Book the fills into positions and queue the notifications (sent after the response)."""
        makers = [tp.maker for tp in prints if tp.maker is not None and tp.maker not in orders]
        touched = orders + list(dict.fromkeys(makers))
        for tp in prints:
            self._position(tp)
        self._remember(touched, prints)

        def publish() -> None:
            if change is not None:
                self.hub.publish([change])
            self.hub.user_events(touched, prints)

        c.after.append(publish)

    def _with_trades(
        self, c: Caller, st: InstrumentState, order: Order, prints: list[TradePrint]
    ) -> dict[str, Any]:
        index = self.market.index_price(st.inst.base)
        trades = [msg.user_trade(st, tp, order, index) for tp in prints if tp.taker is order]
        return {"order": msg.order_object(st.inst, order), "trades": trades}

    def _position(self, tp: TradePrint) -> None:
        for order in (tp.taker, tp.maker):
            if order is not None:
                pos = self.positions.setdefault((order.account, tp.inst), [0, 0])
                signed = tp.lots if order.is_buy else -tp.lots
                pos[0] += signed
                pos[1] += signed * tp.price

    def _remember(self, orders: list[Order], prints: list[TradePrint]) -> None:
        for tp in prints:
            st = self.market.states[tp.inst]
            index = self.market.index_price(st.inst.base)
            for order in (tp.taker, tp.maker):
                if order is not None:
                    self.user_trades[order.account].append(msg.user_trade(st, tp, order, index))
        for order in orders:
            if order.state != "open":
                self._closed.append(order.order_id)
        while len(self._closed) > CLOSED_ORDERS_KEPT:
            self.market.orders.pop(self._closed.popleft(), None)

    # --- reading -----------------------------------------------------------------------------------

    def _objects(self, orders: list[Order]) -> list[dict[str, Any]]:
        return [msg.order_object(self.market.states[o.inst].inst, o) for o in orders]

    def get_open_orders(self, c: Caller, p: dict[str, Any]) -> list[dict[str, Any]]:
        kind = p.get("kind")
        return self._objects([o for o in self.market.open_orders(c.account) if self._in(o, None, kind)])

    def get_open_orders_by_instrument(self, c: Caller, p: dict[str, Any]) -> list[dict[str, Any]]:
        st = self._state(p["instrument_name"], -32602)
        return self._objects([o for o in self.market.open_orders(c.account) if o.inst == st.index])

    def get_open_orders_by_label(self, c: Caller, p: dict[str, Any]) -> list[dict[str, Any]]:
        label = p.get("label")
        orders = self.market.open_orders(c.account)
        return self._objects(
            [o for o in orders if self._in(o, p["currency"], None) and label in (None, o.label)]
        )

    def get_order_state(self, c: Caller, p: dict[str, Any]) -> dict[str, Any]:
        order = self._own(c, p["order_id"])
        return msg.order_object(self.market.states[order.inst].inst, order)

    def get_order_state_by_label(self, c: Caller, p: dict[str, Any]) -> list[dict[str, Any]]:
        label = p.get("label")
        orders = [o for o in self.market.orders.values() if o.account == c.account]
        return self._objects(
            [o for o in orders if self._in(o, p["currency"], None) and label in (None, o.label)]
        )

    def _position_object(self, account: str, st: InstrumentState) -> dict[str, Any]:
        lots, value = self.positions.get((account, st.index), [0, 0])
        inst = st.inst
        mark = msg.mark_price(st)
        avg = round(value / lots * inst.tick, inst.tick_decimals) if lots else 0.0
        size = inst.amt(abs(lots)) * (1 if lots >= 0 else -1)
        pnl = (mark - avg) * size / mark if lots and mark else 0.0
        return {
            "instrument_name": inst.name,
            "kind": inst.kind,
            "size": size,
            "direction": "buy" if lots > 0 else "sell" if lots < 0 else "zero",
            "average_price": avg,
            "mark_price": mark,
            "index_price": self.market.index_price(inst.base),
            "settlement_price": mark,
            "delta": round(size / mark, 8) if mark and inst.kind == "future" else 0.0,
            "initial_margin": 0.0,
            "maintenance_margin": 0.0,
            "total_profit_loss": round(pnl, 8),
            "floating_profit_loss": round(pnl, 8),
            "realized_profit_loss": 0.0,
            "estimated_liquidation_price": 0.0,
            "open_orders_margin": 0.0,
            "size_currency": round(size / mark, 8) if mark and inst.kind == "future" else size,
            "interest_value": 0.0,
            "leverage": 50,
        }

    def get_position(self, c: Caller, p: dict[str, Any]) -> dict[str, Any]:
        return self._position_object(c.account, self._state(p["instrument_name"], -32602))

    def get_positions(self, c: Caller, p: dict[str, Any]) -> list[dict[str, Any]]:
        currency, kind = p.get("currency", "any"), p.get("kind")
        out = []
        for (account, inst), _ in self.positions.items():
            st = self.market.states[inst]
            if account == c.account and currency in ("any", st.inst.base) and kind in (None, st.inst.kind):
                out.append(self._position_object(account, st))
        return out

    def get_user_trades_by_instrument(self, c: Caller, p: dict[str, Any]) -> dict[str, Any]:
        st = self._state(p["instrument_name"], -32602)
        trades = [t for t in self.user_trades[c.account] if t["instrument_name"] == st.inst.name]
        count = p.get("count", 10)
        if p.get("sorting") == "desc":
            trades.reverse()
        return {
            "trades": trades[-count:] if p.get("sorting") != "desc" else trades[:count],
            "has_more": False,
        }

    # --- cancel on disconnect ----------------------------------------------------------------------

    def set_cod(self, c: Caller, p: dict[str, Any], enabled: bool) -> str:
        scope = p.get("scope", "connection")
        if scope == "connection" and c.session is None:
            raise invalid("scope", "scope connection needs a WebSocket connection; use account over HTTP")
        if scope == "account":
            self.cod_account[c.account] = enabled
        if c.session is not None:
            c.session.cod = enabled
        return "ok"

    def get_cod(self, c: Caller, p: dict[str, Any]) -> dict[str, Any]:
        scope = p.get("scope", "connection")
        if scope == "account" or c.session is None:
            return {"scope": "account", "enabled": self.cod_account.get(c.account, False)}
        return {"scope": "connection", "enabled": c.session.cod}
