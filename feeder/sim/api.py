"""Method dispatch and the public and session methods, for WebSocket and HTTP alike.

`Api.call` is the single entry for a parsed request: method lookup (-32601), WebSocket-only check
(11050 over HTTP), rate limits (10028; the shell then closes the connection), params validation
(-32000 when params are missing altogether, -32602 naming the param), authentication of private
methods (13009 on a WebSocket that did not authenticate or whose token expired; 10000 over HTTP
without an Authorization header), then the handler. Side effects that must follow the response
(snapshots after a subscribe, notifications after an order) are appended to `Ctx.after`.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from feeder.sim import messages as msg
from feeder.sim.account import account_summary
from feeder.sim.auth import Accounts, Grant
from feeder.sim.hub import Hub
from feeder.sim.instruments import CURRENCY_INFO, OTHER_CURRENCIES, currency_object
from feeder.sim.market import InstrumentState, Market
from feeder.sim.params import MethodSpec, method_spec, validate
from feeder.sim.ratelimit import Limiter
from feeder.sim.rpc import Request, RpcError, invalid
from feeder.sim.session import Session
from feeder.sim.trading import Caller, Trading

VERSION = "1.2.26"


class Shell(Protocol):
    """What the asyncio server offers the methods."""

    def start_heartbeat(self, s: Session, interval: float) -> None: ...
    def stop_heartbeat(self, s: Session) -> None: ...
    def close_session(self, s: Session, code: int, reason: str, cancel_orders: bool = True) -> None: ...


class TooManyRequests(RpcError):
    """10028: the caller ran out of credits; the connection is closed after the answer."""

    def __init__(self, bucket: str):
        super().__init__(10028, {"reason": f"rate limit of the {bucket} bucket exceeded"})


@dataclass
class Ctx:
    """One request's context: its connection (None over HTTP) and what to do after the answer."""

    session: Session | None
    key: str  # rate-limit key when unauthenticated: the connection or the client IP
    authorization: str | None = None  # HTTP Authorization header
    after: list[Callable[[], None]] = field(default_factory=list)

    @property
    def http(self) -> bool:
        return self.session is None


class Api:
    def __init__(
        self, market: Market, hub: Hub, accounts: Accounts, limiter: Limiter | None, shell: Shell,
        min_heartbeat: float, matching_limit: tuple[float, float] = (5.0, 20.0),
    ):  # fmt: skip
        self.market, self.hub, self.accounts, self.limiter, self.shell = market, hub, accounts, limiter, shell
        self.min_heartbeat = min_heartbeat
        self.matching_limit = matching_limit
        self.trading = Trading(market, hub)
        self.handlers: dict[str, Callable[[Ctx, dict[str, Any]], Any]] = {
            "public/hello": self.hello,
            "public/test": self.test,
            "public/get_time": lambda c, p: self.hub.now_ms(),
            "public/status": self.status,
            "public/set_heartbeat": self.set_heartbeat,
            "public/disable_heartbeat": self.disable_heartbeat,
            "public/auth": self.auth,
            "public/get_currencies": lambda c, p: [currency_object(x) for x in ("BTC", "ETH")],
            "public/get_instruments": self.get_instruments,
            "public/get_instrument": self.get_instrument,
            "public/get_book_summary_by_currency": self.get_book_summary_by_currency,
            "public/get_book_summary_by_instrument": lambda c, p: [
                self._summary(self._state(p["instrument_name"]))
            ],
            "public/get_order_book": self.get_order_book,
            "public/ticker": lambda c, p: self._ticker(self._state(p["instrument_name"])),
            "public/get_index_price": self.get_index_price,
            "public/get_last_trades_by_instrument": self.get_last_trades,
            "public/subscribe": self.subscribe,
            "private/subscribe": self.subscribe,
            "public/unsubscribe": self.unsubscribe,
            "private/unsubscribe": self.unsubscribe,
            "public/unsubscribe_all": self.unsubscribe_all,
            "private/unsubscribe_all": self.unsubscribe_all,
            "private/logout": self.logout,
        }
        self.private: dict[str, Callable[[Caller, dict[str, Any]], Any]] = {
            **self.trading.handlers(),
            "private/get_account_summary": lambda c, p: account_summary(
                c.account, p["currency"], self.matching_limit
            ),
        }

    def hello(self, ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
        """public/hello: the client's name is kept, so faults can target it (`client=`)."""
        name = params.get("client_name")
        if ctx.session is not None and isinstance(name, str):
            ctx.session.client_name = name
        return {"version": VERSION}

    # --- dispatch ----------------------------------------------------------------------------------

    def call(self, ctx: Ctx, req: Request) -> Any:
        spec = method_spec(req.method)
        if spec.ws_only and ctx.http:
            raise RpcError(11050, {"reason": f"{spec.name} is only available over WebSocket"})
        self._charge(ctx, spec)
        if not req.has_params and any(p.required for p in spec.params.values()):
            raise RpcError(-32000)
        params = validate(spec, req.params, ctx.http)
        if not spec.private:
            return self.handlers[spec.name](ctx, params)
        grant = self._authorize(ctx, req.params.get("access_token"))
        if spec.name in self.handlers:
            return self.handlers[spec.name](ctx, params)
        caller = Caller(grant.client_id, ctx.session, self.hub.now_ms(), ctx.after)
        return self.private[spec.name](caller, params)

    def _charge(self, ctx: Ctx, spec: MethodSpec) -> None:
        if self.limiter is None:
            return
        account = ctx.session.account if ctx.session is not None else None
        if not self.limiter.allow(account or ctx.key, spec.bucket, time.monotonic()):
            self.hub.counters["rate_limited"] += 1
            raise TooManyRequests(spec.bucket)

    def _authorize(self, ctx: Ctx, token: Any) -> Grant:
        now = time.monotonic()
        conn = ctx.session.id if ctx.session is not None else None
        if isinstance(token, str):
            return self.accounts.check(token, now, conn)
        if ctx.session is not None:
            if ctx.session.grant is None:
                raise RpcError(13009, {"reason": "authorization_required: call public/auth first"})
            return self.accounts.check(ctx.session.grant.access_token, now, conn)
        return self._http_grant(ctx.authorization, now)

    def _http_grant(self, header: str | None, now: float) -> Grant:
        if not header:
            raise RpcError(10000, {"reason": "send Authorization: Bearer <access_token> (or Basic)"})
        kind, _, value = header.partition(" ")
        if kind.lower() == "bearer":
            return self.accounts.check(value.strip(), now, None)
        if kind.lower() == "basic":
            try:
                client_id, _, secret = base64.b64decode(value.strip()).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                raise RpcError(13004) from None
            params = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
            return self.accounts.grant(params, now, 0, None)
        raise RpcError(13009, {"reason": "unsupported Authorization scheme: use Bearer or Basic"})

    # --- session -----------------------------------------------------------------------------------

    def test(self, ctx: Ctx, p: dict[str, Any]) -> dict[str, Any]:
        if p.get("expected_result") == "exception":
            raise RpcError(11094, {"reason": "expected_result was exception"})
        if ctx.session is not None:
            ctx.session.hb_pending = False
        return {"version": VERSION}

    def set_heartbeat(self, ctx: Ctx, p: dict[str, Any]) -> str:
        interval = p["interval"]
        if interval < self.min_heartbeat:
            raise invalid("interval", f"must be at least {self.min_heartbeat:g} seconds")
        assert ctx.session is not None
        self.shell.start_heartbeat(ctx.session, float(interval))
        return "ok"

    def disable_heartbeat(self, ctx: Ctx, p: dict[str, Any]) -> str:
        assert ctx.session is not None
        self.shell.stop_heartbeat(ctx.session)
        return "ok"

    def auth(self, ctx: Ctx, p: dict[str, Any]) -> dict[str, Any]:
        s = ctx.session
        grant = self.accounts.grant(p, time.monotonic(), time.time_ns() // 1_000_000, s.id if s else None)
        if s is not None:
            s.grant = grant
            if self.trading.cod_account.get(grant.client_id):
                s.cod = True
        return grant.result(self.accounts.token_ttl, p.get("state"))

    def logout(self, ctx: Ctx, p: dict[str, Any]) -> str:
        s = ctx.session
        assert s is not None
        if p.get("invalidate_token", True) and s.grant is not None:
            self.accounts.revoke(s.grant)
        ctx.after.append(lambda: self.shell.close_session(s, 1000, "logout", cancel_orders=False))
        return "ok"

    # --- subscriptions -----------------------------------------------------------------------------

    def subscribe(self, ctx: Ctx, p: dict[str, Any]) -> list[str]:
        s = ctx.session
        assert s is not None
        specs = self.hub.check_subscribe(s, p["channels"])
        ctx.after.append(lambda: self.hub.subscribe(s, specs))
        return [spec.name for spec in specs]

    def unsubscribe(self, ctx: Ctx, p: dict[str, Any]) -> list[str]:
        assert ctx.session is not None
        return self.hub.unsubscribe(ctx.session, [c for c in p["channels"] if isinstance(c, str)])

    def unsubscribe_all(self, ctx: Ctx, p: dict[str, Any]) -> str:
        assert ctx.session is not None
        self.hub.unsubscribe(ctx.session, list(ctx.session.subs))
        return "ok"

    # --- market data -------------------------------------------------------------------------------

    def status(self, ctx: Ctx, p: dict[str, Any]) -> dict[str, Any]:
        locked = sorted(self.market.locked)
        return {
            "locked": "true" if len(locked) == len(CURRENCY_INFO) else "partial" if locked else "false",
            "locked_currencies": locked,
            "locked_indices": [f"{b.lower()}_usd" for b in locked],
        }

    def _state(self, name: str) -> InstrumentState:
        """A live instrument's state (listed, not terminated)."""
        idx = self.market.catalogue.live.get(name)
        if idx is None:
            raise invalid("instrument_name", f"unknown instrument {name!r}")
        return self.market.states[idx]

    def get_instrument(self, ctx: Ctx, p: dict[str, Any]) -> dict[str, Any]:
        idx = self.market.catalogue.by_name.get(p["instrument_name"])
        if idx is None:
            raise invalid("instrument_name", f"unknown instrument {p['instrument_name']!r}")
        st = self.market.states[idx]
        return st.inst.api_object(st.trading)

    def get_instruments(self, ctx: Ctx, p: dict[str, Any]) -> list[dict[str, Any]]:
        """Live instruments, or (expired=true) those that settled, closed or were terminated."""
        currency, kind = p["currency"], p.get("kind")
        if currency not in ("BTC", "ETH", "any") and currency not in OTHER_CURRENCIES:
            raise invalid("currency", "must be a currency such as BTC, ETH, USDC or any")
        expired = bool(p.get("expired"))
        return [
            st.inst.api_object(st.trading)
            for st in self.market.states
            if currency in ("any", st.inst.base) and kind in (None, st.inst.kind) and st.trading != expired
        ]

    def get_book_summary_by_currency(self, ctx: Ctx, p: dict[str, Any]) -> list[dict[str, Any]]:
        currency, kind = p["currency"], p.get("kind")
        return [
            self._summary(st)
            for st in self.market.states
            if st.trading and st.inst.base == currency and kind in (None, st.inst.kind)
        ]

    def _summary(self, st: InstrumentState) -> dict[str, Any]:
        return msg.book_summary(st, self.market.index_price(st.inst.base), self.market.marks)

    def _ticker(self, st: InstrumentState) -> dict[str, Any]:
        return msg.ticker(st, self.market.index_price(st.inst.base), self.hub.now_ms(), self.market.marks)

    def get_order_book(self, ctx: Ctx, p: dict[str, Any]) -> dict[str, Any]:
        st = self._state(p["instrument_name"])
        depth = p.get("depth", 5)
        bids, asks = st.top(depth)
        return {**self._ticker(st), "change_id": st.change_id, "bids": bids, "asks": asks}

    def get_index_price(self, ctx: Ctx, p: dict[str, Any]) -> dict[str, Any]:
        name = p["index_name"]
        if name not in ("btc_usd", "eth_usd"):
            raise invalid("index_name", "the simulator publishes btc_usd and eth_usd")
        price = self.market.index_price(name.split("_")[0].upper())
        return {"index_price": price, "estimated_delivery_price": price}

    def get_last_trades(self, ctx: Ctx, p: dict[str, Any]) -> dict[str, Any]:
        st = self._state(p["instrument_name"])
        index = self.market.index_price(st.inst.base)
        count = p.get("count", 10)
        trades = [msg.public_trade(st, tp, index, self.market.marks) for tp in st.trades[-count:]]
        if p.get("sorting") == "desc":
            trades.reverse()
        return {"trades": trades, "has_more": len(st.trades) > count}
