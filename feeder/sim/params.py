"""The methods the simulator serves, their params as the official spec declares them, and validation.

Pure. `SPECS` is data: for each method its params (type, required, allowed values), whether it is
private, WebSocket-only, and which rate-limit bucket it draws from. `validate` checks a request's
params once at the boundary: over WebSocket the JSON types must match; over HTTP every value is a
string and is converted by the declared type. Unknown params are ignored, as Deribit does.
A test checks this table against reference/deribit/openapi.json.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import orjson

from feeder.sim.rpc import RpcError, invalid

S, N, I, B, A = "string", "number", "integer", "boolean", "array"  # noqa: E741


@dataclass(frozen=True)
class Param:
    type: str
    required: bool = False
    enum: tuple[Any, ...] | None = None
    max_len: int | None = None


@dataclass(frozen=True)
class MethodSpec:
    name: str
    params: dict[str, Param] = field(default_factory=dict)
    ws_only: bool = False
    bucket: str = "default"  # rate-limit bucket: default, matching, subscribe, instruments

    @property
    def private(self) -> bool:
        return self.name.startswith("private/")


KINDS = ("future", "option", "spot", "future_combo", "option_combo")
TIFS = ("good_til_cancelled", "good_til_day", "fill_or_kill", "immediate_or_cancel")
ORDER_TYPES = (
    "limit",
    "stop_limit",
    "take_limit",
    "market",
    "stop_market",
    "take_market",
    "market_limit",
    "trailing_stop",
)
OPEN_TYPES = (
    "all",
    "limit",
    "trigger_all",
    "stop_all",
    "stop_limit",
    "stop_market",
    "take_all",
    "take_limit",
    "take_market",
    "trailing_all",
    "trailing_stop",
)
CANCEL_TYPES = ("all", "limit", "trigger_all", "stop", "take", "trailing_stop")
CURRENCIES = ("BTC", "ETH", "USDC", "USDT", "EURR")
SCOPES = ("connection", "account")
SORTING = ("asc", "desc", "default")

_ORDER = {
    "instrument_name": Param(S, True),
    "amount": Param(N),
    "contracts": Param(N),
    "type": Param(S, enum=ORDER_TYPES),
    "label": Param(S, max_len=64),
    "price": Param(N),
    "time_in_force": Param(S, enum=TIFS),
    "post_only": Param(B),
    "reject_post_only": Param(B),
    "reduce_only": Param(B),
}
_CHANNELS = {"channels": Param(A, True)}


def _specs(*specs: MethodSpec) -> dict[str, MethodSpec]:
    return {s.name: s for s in specs}


SPECS = _specs(
    MethodSpec(
        "public/hello", {"client_name": Param(S, True), "client_version": Param(S, True)}, ws_only=True
    ),
    MethodSpec("public/test", {"expected_result": Param(S, enum=("exception",))}),
    MethodSpec("public/get_time"),
    MethodSpec("public/status"),
    MethodSpec("public/set_heartbeat", {"interval": Param(N, True)}, ws_only=True),
    MethodSpec("public/disable_heartbeat", ws_only=True),
    MethodSpec(
        "public/auth",
        {
            "grant_type": Param(S, True, enum=("client_credentials", "client_signature", "refresh_token")),
            "client_id": Param(S),
            "client_secret": Param(S),
            "refresh_token": Param(S),
            "timestamp": Param(I),
            "signature": Param(S),
            "nonce": Param(S),
            "data": Param(S),
            "state": Param(S),
            "scope": Param(S),
        },
    ),
    MethodSpec("public/get_currencies"),
    MethodSpec(
        "public/get_instruments",
        {"currency": Param(S, True), "kind": Param(S, enum=KINDS), "expired": Param(B)},
        bucket="instruments",
    ),
    MethodSpec("public/get_instrument", {"instrument_name": Param(S, True)}),
    MethodSpec(
        "public/get_book_summary_by_currency",
        {"currency": Param(S, True, enum=CURRENCIES), "kind": Param(S, enum=KINDS)},
    ),
    MethodSpec("public/get_book_summary_by_instrument", {"instrument_name": Param(S, True)}),
    MethodSpec(
        "public/get_order_book",
        {"instrument_name": Param(S, True), "depth": Param(I, enum=(1, 5, 10, 20, 50, 100, 1000, 10000))},
    ),
    MethodSpec("public/ticker", {"instrument_name": Param(S, True)}),
    MethodSpec("public/get_index_price", {"index_name": Param(S, True)}),
    MethodSpec(
        "public/get_last_trades_by_instrument",
        {"instrument_name": Param(S, True), "count": Param(I), "sorting": Param(S, enum=SORTING)},
    ),
    MethodSpec("public/subscribe", _CHANNELS, ws_only=True, bucket="subscribe"),
    MethodSpec("private/subscribe", {**_CHANNELS, "label": Param(S)}, ws_only=True, bucket="subscribe"),
    MethodSpec("public/unsubscribe", _CHANNELS, ws_only=True, bucket="subscribe"),
    MethodSpec("private/unsubscribe", _CHANNELS, ws_only=True, bucket="subscribe"),
    MethodSpec("public/unsubscribe_all", ws_only=True, bucket="subscribe"),
    MethodSpec("private/unsubscribe_all", ws_only=True, bucket="subscribe"),
    MethodSpec("private/logout", {"invalidate_token": Param(B)}, ws_only=True),
    MethodSpec("private/buy", _ORDER, bucket="matching"),
    MethodSpec("private/sell", _ORDER, bucket="matching"),
    MethodSpec(
        "private/edit",
        {
            "order_id": Param(S, True),
            "amount": Param(N),
            "contracts": Param(N),
            "price": Param(N),
            "post_only": Param(B),
            "reduce_only": Param(B),
            "reject_post_only": Param(B),
        },
        bucket="matching",
    ),
    MethodSpec("private/cancel", {"order_id": Param(S, True)}, bucket="matching"),
    MethodSpec("private/cancel_all", {"detailed": Param(B)}, bucket="matching"),
    MethodSpec(
        "private/cancel_all_by_instrument",
        {"instrument_name": Param(S, True), "type": Param(S, enum=CANCEL_TYPES), "detailed": Param(B)},
        bucket="matching",
    ),
    MethodSpec(
        "private/cancel_all_by_currency",
        {
            "currency": Param(S, True, enum=CURRENCIES),
            "kind": Param(S, enum=(*KINDS, "combo", "any")),
            "type": Param(S, enum=CANCEL_TYPES),
            "detailed": Param(B),
        },
        bucket="matching",
    ),
    MethodSpec(
        "private/cancel_by_label",
        {"label": Param(S, True), "currency": Param(S, enum=CURRENCIES)},
        bucket="matching",
    ),
    MethodSpec("private/get_open_orders", {"kind": Param(S, enum=KINDS), "type": Param(S, enum=OPEN_TYPES)}),
    MethodSpec(
        "private/get_open_orders_by_instrument",
        {"instrument_name": Param(S, True), "type": Param(S, enum=OPEN_TYPES)},
    ),
    MethodSpec(
        "private/get_open_orders_by_label", {"currency": Param(S, True, enum=CURRENCIES), "label": Param(S)}
    ),
    MethodSpec("private/get_order_state", {"order_id": Param(S, True)}),
    MethodSpec(
        "private/get_order_state_by_label", {"currency": Param(S, True, enum=CURRENCIES), "label": Param(S)}
    ),
    MethodSpec("private/get_position", {"instrument_name": Param(S, True)}),
    MethodSpec(
        "private/get_account_summary",
        {"currency": Param(S, True, enum=CURRENCIES), "subaccount_id": Param(I), "extended": Param(B)},
    ),
    MethodSpec(
        "private/get_positions",
        {"currency": Param(S, enum=(*CURRENCIES, "any")), "kind": Param(S, enum=KINDS)},
    ),
    MethodSpec("private/enable_cancel_on_disconnect", {"scope": Param(S, enum=SCOPES)}),
    MethodSpec("private/disable_cancel_on_disconnect", {"scope": Param(S, enum=SCOPES)}),
    MethodSpec("private/get_cancel_on_disconnect", {"scope": Param(S, enum=SCOPES)}),
    MethodSpec(
        "private/get_user_trades_by_instrument",
        {"instrument_name": Param(S, True), "count": Param(I), "sorting": Param(S, enum=SORTING)},
    ),
)


def validate(spec: MethodSpec, params: dict[str, Any], from_http: bool) -> dict[str, Any]:
    """The params, checked and (over HTTP) converted; raises RpcError -32602 naming the bad param."""
    out: dict[str, Any] = {}
    for name, param in spec.params.items():
        if name not in params or params[name] is None:
            if param.required:
                raise invalid(name, "value required")
            continue
        value = _convert(name, param, params[name]) if from_http else _check(name, param, params[name])
        if param.enum is not None and value not in param.enum:
            raise invalid(name, f"must be one of: {', '.join(map(str, param.enum))}")
        if param.max_len is not None and len(value) > param.max_len:
            raise invalid(name, f"must be at most {param.max_len} characters")
        out[name] = value
    return out


def _check(name: str, param: Param, value: Any) -> Any:
    kind = param.type
    if kind == S and isinstance(value, str):
        return value
    if kind == B and isinstance(value, bool):
        return value
    if kind == A and isinstance(value, list):
        return value
    if isinstance(value, bool):
        raise invalid(name, f"must be {_article(kind)}")
    if kind == N and isinstance(value, int | float) and math.isfinite(value):
        return value
    if kind == I and (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
        return int(value)
    raise invalid(name, f"must be {_article(kind)}")


def _convert(name: str, param: Param, text: Any) -> Any:
    """An HTTP query value (a string) as the declared type."""
    if not isinstance(text, str):
        return _check(name, param, text)
    kind = param.type
    try:
        if kind == N:
            value = float(text)
            if not math.isfinite(value):
                raise ValueError(text)
            return int(value) if value.is_integer() and "." not in text else value
        if kind == I:
            return int(text)
        if kind == B:
            if text not in ("true", "false"):
                raise ValueError(text)
            return text == "true"
        if kind == A:
            return orjson.loads(text) if text.startswith("[") else [t for t in text.split(",") if t]
    except (ValueError, orjson.JSONDecodeError):
        raise invalid(name, f"must be {_article(kind)}") from None
    return text


def _article(kind: str) -> str:
    return {S: "a string", N: "a number", I: "an integer", B: "a boolean (true or false)", A: "a list"}[kind]


def method_spec(method: str) -> MethodSpec:
    """The spec of a served method; raises -32601 for anything else."""
    spec = SPECS.get(method)
    if spec is None:
        raise RpcError(-32601, {"reason": f"method {method!r} is not served by the simulator"})
    return spec
