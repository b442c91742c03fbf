"""Test kit for the simulator: a raw JSON-RPC WebSocket client and checks against the official specs.

`Rpc` is a deliberately plain synchronous client (websockets.sync) so that the tests see exactly
what the simulator puts on the wire. The spec checks read reference/deribit/openapi.json and
asyncapi.json (kept in tests/reference/deribit/).
"""

from __future__ import annotations

import contextlib
import copy
import json
import time
from collections import deque
from functools import cache
from typing import Any

import jsonschema
from specs import load_spec
from websockets.sync.client import connect

from feeder.sim import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

DEADLINE = 30.0


class Rpc:
    """A JSON-RPC client on one WebSocket; notifications that arrive meanwhile are kept in order."""

    def __init__(self, url: str, **kwargs: Any):
        self._exits = contextlib.ExitStack()
        options = {"max_size": None, "open_timeout": DEADLINE, **kwargs}
        self.ws = self._exits.enter_context(connect(url, **options))
        self.next_id = 0
        self.notes: deque[dict] = deque()

    def close(self) -> None:
        self._exits.close()

    def send(self, method: str, params: dict | None = None) -> int:
        self.next_id += 1
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params is not None:
            msg["params"] = params
        self.ws.send(json.dumps(msg))
        return self.next_id

    def recv(self, timeout: float = DEADLINE) -> dict:
        return json.loads(self.ws.recv(timeout=timeout))

    def call(self, method: str, params: dict | None = None, timeout: float = DEADLINE) -> dict:
        """The whole response (result or error) to one request."""
        rid = self.send(method, params)
        deadline = time.monotonic() + timeout
        while True:
            msg = self.recv(max(0.01, deadline - time.monotonic()))
            if msg.get("id") == rid:
                return msg
            self.notes.append(msg)

    def result(self, method: str, params: dict | None = None) -> Any:
        msg = self.call(method, params)
        assert "result" in msg, f"{method} failed: {msg.get('error')}"
        return msg["result"]

    def error(self, method: str, params: dict | None = None) -> dict:
        msg = self.call(method, params)
        assert "error" in msg, f"{method} unexpectedly succeeded: {msg.get('result')}"
        return msg["error"]

    def auth(self, client_id: str = DEMO_CLIENT_ID, secret: str = DEMO_CLIENT_SECRET, **extra: Any) -> dict:
        params = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": secret,
            **extra,
        }
        return self.result("public/auth", params)

    def note(
        self, channel: str | None = None, timeout: float = DEADLINE, method: str = "subscription"
    ) -> dict:
        """The next notification (of `channel`, skipping others) as the whole message."""
        deadline = time.monotonic() + timeout
        checked = 0
        while True:
            for i in range(checked, len(self.notes)):
                msg = self.notes[i]
                if msg.get("method") == method and (
                    channel is None or msg.get("params", {}).get("channel") == channel
                ):
                    del self.notes[i]
                    return msg
            checked = len(self.notes)
            self.notes.append(self.recv(max(0.01, deadline - time.monotonic())))

    def data(self, channel: str, timeout: float = DEADLINE) -> Any:
        return self.note(channel, timeout)["params"]["data"]

    def silent(self, seconds: float) -> list[dict]:
        """Everything that arrives within `seconds` (used where nothing more should come)."""
        got = list(self.notes)
        self.notes.clear()
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                got.append(self.recv(left))
            except TimeoutError:
                break
        return got


# --- the official specs ----------------------------------------------------------------------------


def _resolve(doc: dict, ref: str) -> Any:
    node: Any = doc
    for part in ref.lstrip("#/").split("/"):
        node = node.get(part) if isinstance(node, dict) else None
    return node


@cache
def openapi() -> dict:
    """openapi.json with its inconsistencies resolved the way its own examples (real messages) go.

    - The spec points at a few schemas it does not define (open_order_price, the ticker and order
      book results): those refs become {} so the rest of each schema still checks.
    - user_trade declares matching_id a string and reduce_only/post_only strings, while every
      example (here and in asyncapi.json) sends null and booleans: both are allowed.
    - instrument.tick_size_steps is declared one object, and every example is a list of them;
      instrument.quote_currency allows only USD, and the option example says BTC.
    - instrument.settlement_period allows month, week and perpetual; Deribit lists daily
      expiries with "day" (what its get_instruments answers for them), so "day" is allowed too.
    - book_summary declares numbers where its own description and example say `null` when there
      is no bid, ask or trade (bid_price, ask_price, mid_price, last, high, low, price_change).
    - Some results (public/ticker, public/get_order_book) point at ErrorResponse, the spec's
      placeholder "for broken references": they are left open here and checked against the
      method's response example instead (check_response does both).
    """
    doc = copy.deepcopy(load_spec("openapi.json"))
    instrument = doc["components"]["schemas"]["instrument"]["properties"]
    instrument["tick_size_steps"] = {"type": "array", "items": instrument["tick_size_steps"]}
    instrument["quote_currency"] = {"type": "string"}
    instrument["settlement_period"]["enum"] = [*instrument["settlement_period"]["enum"], "day"]
    summary = doc["components"]["schemas"]["book_summary"]["properties"]
    for name in ("bid_price", "ask_price", "mid_price", "last", "high", "low", "price_change"):
        summary[name] = {**summary[name], "type": ["number", "null"]}
    trade = doc["components"]["schemas"]["user_trade"]["properties"]
    trade["matching_id"] = {"type": ["string", "null"]}
    trade["reduce_only"] = trade["post_only"] = {"type": ["boolean", "string"]}

    placeholder = "#/components/schemas/ErrorResponse"

    def fix(node: Any) -> None:
        if isinstance(node, dict):
            if (
                node.get("result", {}).get("$ref") == placeholder
                if isinstance(node.get("result"), dict)
                else False
            ):
                node["result"] = {}
            ref = node.get("$ref")
            if isinstance(ref, str) and _resolve(doc, ref) in (None, {}):
                node.pop("$ref")
            for value in node.values():
                fix(value)
        elif isinstance(node, list):
            for value in node:
                fix(value)

    fix(doc)
    return doc


def method(name: str) -> dict:
    return openapi()["paths"][f"/{name}"]["get"]


def response_schema(name: str) -> dict:
    ref = method(name)["responses"]["200"]["$ref"]
    schema_ref = _resolve(openapi(), ref)["content"]["application/json"]["schema"]["$ref"]
    return _resolve(openapi(), schema_ref)


def schema(name: str) -> dict:
    return openapi()["components"]["schemas"][name]


def validate(instance: Any, schema_obj: dict) -> None:
    """jsonschema validation with the spec's #/components refs resolvable."""
    root = {**schema_obj, "components": openapi()["components"]}
    jsonschema.validate(instance, root)


# Where an example contradicts its own schema, the schema's type is the one checked; the cancel
# example is a stop-market order (price "market_price"), the tests cancel limit orders.
EXAMPLE_FIXES = {
    "public/status": {"locked": "false"},
    "private/cancel": {"price": 1.0},
    "private/get_account_summary": {"self_trading_extended_to_subaccounts": "false"},
}
_SUMMARY_OPTIONAL = (
    "bid_price",
    "ask_price",
    "mid_price",
    "last",
    "high",
    "low",
    "funding_8h",
    "current_funding",
)
# Fields of an example that only some results carry (options only, advanced orders only).
OPTIONAL = {
    "public/get_instrument": ("strike", "option_type"),
    "public/get_instruments": ("max_liquidation_commission", "max_leverage"),
    "public/ticker": ("current_funding", "funding_8h", "interest_value"),  # perpetuals only
    # null without a bid, an ask or a trade; funding for perpetuals, the model for options only
    "public/get_book_summary_by_currency": _SUMMARY_OPTIONAL,
    "public/get_book_summary_by_instrument": _SUMMARY_OPTIONAL,
    "private/edit": ("implv", "advanced"),
    "private/cancel": ("triggered", "trigger", "trigger_price"),
}


def response_example(name: str) -> dict | None:
    content = method(name)["responses"]["200"].get("content", {})
    return content.get("application/json", {}).get("examples", {}).get("response", {}).get("value")


def check_response(name: str, msg: dict) -> None:
    """A response checked against the method's response schema and shaped like its example."""
    validate(msg, response_schema(name))
    example = response_example(name)
    if example is not None and "result" in example:
        result = example["result"]
        if isinstance(result, dict):
            result = {**result, **EXAMPLE_FIXES.get(name, {})}
        same_shape(msg["result"], result, "result", frozenset(OPTIONAL.get(name, ())))


def check_error(msg: dict) -> None:
    validate(msg, schema("ErrorResponse"))
    assert isinstance(msg["error"]["message"], str)


def channel_examples(channel: str) -> dict[str, Any]:
    message = load_spec("asyncapi.json")["channels"][channel]["messages"]["subscription_message"]
    return {example["name"]: example["payload"] for example in message["examples"]}


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def same_shape(ours: Any, example: Any, where: str = "data", optional: frozenset[str] = frozenset()) -> None:
    """Every field of the spec example is present in ours with the same JSON type (recursively).

    `optional` names fields the openapi schema documents as optional (present only in some cases)
    or as null in some cases.
    """
    if isinstance(example, dict):
        assert isinstance(ours, dict), f"{where}: expected an object, got {ours!r}"
        for key, value in example.items():
            if key in optional and ours.get(key) is None:
                continue
            assert key in ours, f"{where}: field {key!r} of the spec example is missing"
            if value is not None:
                same_shape(ours[key], value, f"{where}.{key}", optional)
    elif (
        isinstance(example, list) and len({_kind(e) for e in example}) > 1
    ):  # a tuple: [action, price, amount]
        assert isinstance(ours, list) and len(ours) == len(example), (
            f"{where}: expected a tuple like {example!r}"
        )
        for i, (item, like) in enumerate(zip(ours, example, strict=True)):
            same_shape(item, like, f"{where}[{i}]", optional)
    elif isinstance(example, list):
        assert isinstance(ours, list), f"{where}: expected a list, got {ours!r}"
        for i, item in enumerate(ours[:3]):
            if example:
                same_shape(item, example[0], f"{where}[{i}]", optional)
    else:
        assert _kind(ours) == _kind(example), f"{where}: {ours!r} is not a {_kind(example)} like {example!r}"


def check_notification(msg: dict, spec_channel: str, example: str, optional: tuple[str, ...] = ()) -> None:
    """A subscription notification: the envelope (DeribitMessage) and its data shaped like the example."""
    envelope = load_spec("asyncapi.json")["components"]["schemas"]["DeribitMessage"]
    jsonschema.validate(msg, envelope)
    assert msg["method"] == "subscription"
    same_shape(msg["params"]["data"], channel_examples(spec_channel)[example], optional=frozenset(optional))
