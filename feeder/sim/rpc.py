"""JSON-RPC 2.0 as Deribit speaks it: request parsing, responses, error objects and their codes.

Pure. Responses carry `usIn`/`usOut`/`usDiff` (server receive and send times, microseconds) and
`testnet` (always true: this is not the production exchange). A request that cannot be parsed is
answered, never dropped: parse errors get -32700, a request that is not an object or has no method
gets 11050 bad_request, bad params get -32602 with `data.param` and `data.reason`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson

# Deribit's codes and the messages it sends with them.
MESSAGES = {
    10000: "authorization_required",
    10004: "order_not_found",
    10009: "not_enough_funds",
    10012: "book_closed",
    10019: "locked_by_admin",
    10020: "invalid_or_unsupported_instrument",
    10028: "too_many_requests",
    10043: "price_wrong_tick",
    11029: "invalid_arguments",
    11044: "not_open_order",
    11050: "bad_request",
    11054: "post_only_reject",
    11094: "internal_server_error",
    13004: "invalid_credentials",
    13009: "unauthorized",
    13010: "value_required",
    13020: "not_found",
    13021: "forbidden",
    13028: "temporarily_unavailable",
    13778: "raw_subscriptions_not_available_for_unauthorized",
    -32000: "Missing params",
    -32601: "Method not found",
    -32602: "Invalid params",
    -32700: "Parse error",
}

Id = int | str | None


class RpcError(Exception):
    """An error object to answer with: Deribit code, its message, optional data."""

    def __init__(self, code: int, data: Any = None):
        self.code, self.data = code, data
        self.request_id: Id = None  # set when a bad request still had a readable id
        self.message = MESSAGES.get(code, "error")
        super().__init__(f"{code} {self.message}" + (f" {data}" if data is not None else ""))

    def obj(self) -> dict[str, Any]:
        err: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.data is not None:
            err["data"] = self.data
        return err


def invalid(param: str, reason: str) -> RpcError:
    """-32602 Invalid params naming the param and what is wrong with it."""
    return RpcError(-32602, {"reason": reason, "param": param})


@dataclass(frozen=True, slots=True)
class Request:
    id: Id
    has_id: bool
    method: str
    params: dict[str, Any]
    has_params: bool


def now_us() -> int:
    return time.time_ns() // 1000


def parse_request(text: str | bytes) -> Request:
    """The request in `text`; raises RpcError (with `request_id` when readable) for a bad one."""
    try:
        msg = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise RpcError(-32700) from None
    if not isinstance(msg, dict):
        raise RpcError(11050, {"reason": "a request must be a JSON object (batches are not supported)"})
    req_id = msg.get("id")
    if not isinstance(req_id, int | str | None) or isinstance(req_id, bool):
        raise RpcError(11050, {"reason": "id must be an integer or a string"})
    method = msg.get("method")
    if not isinstance(method, str):
        method = ""
    err: RpcError | None = None
    if msg.get("jsonrpc", "2.0") != "2.0":
        err = RpcError(11050, {"reason": 'jsonrpc must be "2.0"'})
    elif not method:
        err = RpcError(11050, {"reason": "method is missing"})
    params = msg.get("params")
    if err is None and params is not None and not isinstance(params, dict):
        err = invalid("params", "must be an object of named params")
    if err is not None:
        err.request_id = req_id
        raise err
    return Request(req_id, "id" in msg, method, params or {}, params is not None)


def _envelope(req_id: Id, has_id: bool) -> dict[str, Any]:
    env: dict[str, Any] = {"jsonrpc": "2.0"}
    if has_id:
        env["id"] = req_id
    return env


def _stamp(env: dict[str, Any], us_in: int) -> bytes:
    us_out = now_us()
    env["usIn"], env["usOut"], env["usDiff"], env["testnet"] = us_in, us_out, us_out - us_in, True
    return orjson.dumps(env)


def result_message(req_id: Id, has_id: bool, result: Any, us_in: int) -> bytes:
    env = _envelope(req_id, has_id)
    env["result"] = result
    return _stamp(env, us_in)


def error_message(req_id: Id, has_id: bool, err: RpcError, us_in: int) -> bytes:
    env = _envelope(req_id, has_id)
    env["error"] = err.obj()
    return _stamp(env, us_in)
