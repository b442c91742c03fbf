"""The fault catalogue: names, their params, and how a book message is corrupted. Pure.

Faults target connections: `conn`, an id from `connections`, or `client`, the `client_name` the
connection gave in `public/hello` (a glob: `feeder-w0-*`; it names the connection across reconnects,
where ids change), or every open connection when neither is given; `conn` in the table stands for
either. Book faults act on the next book message (snapshot or change, any
`book.{instrument}.{raw|100ms|agg2}` channel) of `instrument` sent to each targeted connection; the truth is never affected, only what is sent:

| fault              | params                                  | effect                                            |
|--------------------|-----------------------------------------|---------------------------------------------------|
| drop               | conn, how=close/reset, code, reason     | close with that code, or abort (TCP reset)        |
| stall              | conn, seconds (None: until resume),     | keep open, send nothing (answers, test_requests,  |
|                    | pongs=false                             | pongs included); pongs=true: the WebSocket layer  |
|                    |                                         | still answers pings (the exchange behind it hung) |
| resume             | conn                                    | end a stall                                       |
| gap                | instrument, conn, count=1               | skip the next `count` book messages               |
| duplicate          | instrument, conn                        | send the next book message twice                  |
| reorder            | instrument, conn                        | swap the next two book messages                   |
| malformed          | conn, instrument (optional)             | a frame that is not JSON (or the next book        |
|                    |                                         | message cut in half)                              |
| wrong_types        | instrument, conn                        | next book message: change_id and amounts strings  |
| nan_price          | instrument, conn                        | next book message: first price is the token NaN   |
| negative_price     | instrument, conn                        | next book message: first price negated            |
| phantom            | instrument, conn                        | next book message gains a level the truth does    |
|                    |                                         | not have, inside the top 10 and not crossing; its |
|                    |                                         | change_id chain stays valid (only an audit        |
|                    |                                         | against get_order_book can find it)               |
| phantom_cross      | instrument, conn                        | the same with a bid above the best ask (crossed)  |
| huge_frame         | conn, size=2097152                      | one notification frame of `size` bytes            |
| unknown_method     | conn                                    | a notification with method "sim/unknown_method"   |
| unknown_channel    | conn                                    | a subscription notification on a channel never    |
|                    |                                         | subscribed ("sim.unknown_channel")                |
| rate_limit         | conn, id=request/null, refuse_s=0       | the next request gets 10028 (its id, or "id":     |
|                    |                                         | null as Deribit sometimes sends), then the        |
|                    |                                         | connection is closed; for `refuse_s` seconds      |
|                    |                                         | after, new connections get HTTP 429 (0: none)     |
| refuse             | seconds, how=429/refuse                 | new connections get HTTP 429, or are refused at   |
|                    |                                         | TCP level (the port stops listening)              |
| delay_test_request | conn, seconds, count=1                  | the next test_requests are sent `seconds` late    |
| drop_test_request  | conn, count=1                           | the next test_requests are not sent (and their    |
|                    |                                         | missing answer is not held against the client)    |
| heartbeat          | conn                                    | send a heartbeat of type "heartbeat" now          |
| lock               | currency, seconds (None: until unlock)  | the currency is locked (platform_state): its      |
|                    |                                         | books stop, orders and edits get 10019            |
| unlock             | currency                                | end a lock                                        |
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from feeder.errors import SimControlError

if TYPE_CHECKING:
    from feeder.sim.market import InstrumentState

DEFAULT_HUGE = 2 * 1024 * 1024

# name -> {param: (type, required, default)}
_P = dict[str, tuple[type | tuple[type, ...], bool, Any]]
_CONN: _P = {"conn": (int, False, None), "client": (str, False, None)}
_BOOK: _P = {"instrument": (str, True, None), **_CONN}
CATALOGUE: dict[str, _P] = {
    "drop": {**_CONN, "how": (str, False, "close"), "code": (int, False, 1000), "reason": (str, False, "")},
    "stall": {**_CONN, "seconds": ((int, float), False, None), "pongs": (bool, False, False)},
    "resume": _CONN,
    "gap": {**_BOOK, "count": (int, False, 1)},
    "duplicate": _BOOK,
    "reorder": _BOOK,
    "malformed": {**_CONN, "instrument": (str, False, None)},
    "wrong_types": _BOOK,
    "nan_price": _BOOK,
    "negative_price": _BOOK,
    "phantom": _BOOK,
    "phantom_cross": _BOOK,
    "huge_frame": {**_CONN, "size": (int, False, DEFAULT_HUGE)},
    "unknown_method": _CONN,
    "unknown_channel": _CONN,
    "rate_limit": {**_CONN, "id": (str, False, "request"), "refuse_s": ((int, float), False, 0.0)},
    "refuse": {"seconds": ((int, float), True, None), "how": (str, False, "429")},
    "delay_test_request": {**_CONN, "seconds": ((int, float), True, None), "count": (int, False, 1)},
    "drop_test_request": {**_CONN, "count": (int, False, 1)},
    "heartbeat": _CONN,
    "lock": {"currency": (str, True, None), "seconds": ((int, float), False, None)},
    "unlock": {"currency": (str, True, None)},
}
MARKET_FAULTS = ("refuse", "lock", "unlock")  # act on the exchange, not on connections
_CHOICES = {
    ("drop", "how"): ("close", "reset"),
    ("refuse", "how"): ("429", "refuse"),
    ("rate_limit", "id"): ("request", "null", None),  # None: JSON null, what `id=null` parses to
    ("lock", "currency"): ("BTC", "ETH"),
    ("unlock", "currency"): ("BTC", "ETH"),
}


def check_fault(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """The fault's params with defaults filled in; SimControlError naming what is wrong."""
    spec = CATALOGUE.get(name)
    if spec is None:
        raise SimControlError(f"unknown fault {name!r}; known faults: {', '.join(sorted(CATALOGUE))}")
    unknown = set(params) - set(spec)
    if unknown:
        raise SimControlError(f"fault {name!r} takes {sorted(spec) or 'no params'}, not {sorted(unknown)}")
    out = {}
    for param, (kind, required, default) in spec.items():
        value = params.get(param, default)
        if value is None:
            if required:
                raise SimControlError(f"fault {name!r} needs {param!r}")
        elif not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise SimControlError(f"fault {name!r}: {param!r} must be {_type_name(kind)}, got {value!r}")
        choices = _CHOICES.get((name, param))
        if choices and value not in choices:
            raise SimControlError(f"fault {name!r}: {param!r} must be one of {choices}, got {value!r}")
        out[param] = value
    if out.get("conn") is not None and out.get("client") is not None:
        raise SimControlError(f"fault {name!r}: give conn or client, not both")
    _check_ranges(name, out)
    return out


def _check_ranges(name: str, p: dict[str, Any]) -> None:
    if p.get("count") is not None and p["count"] < 1:
        raise SimControlError(f"fault {name!r}: count must be at least 1")
    for param in ("seconds", "refuse_s"):
        seconds = p.get(param)
        if seconds is not None and (not math.isfinite(seconds) or seconds < 0):
            raise SimControlError(f"fault {name!r}: {param} must be a finite number >= 0")
    if name == "huge_frame" and not 1024 <= p["size"] <= 256 * 1024 * 1024:
        raise SimControlError("fault 'huge_frame': size must be between 1 KiB and 256 MiB")
    if name == "drop" and not (p["code"] in (1000, 1001, 1008, 1011) or 3000 <= p["code"] < 5000):
        raise SimControlError("fault 'drop': code must be 1000, 1001, 1008, 1011 or 3000-4999")


@dataclass(frozen=True, slots=True)
class RateLimitFault:
    """A `rate_limit` fault armed on a session: how its 10028 goes out and what follows the close."""

    null_id: bool
    refuse_s: float


def rate_limit_fault(p: dict[str, Any]) -> RateLimitFault:
    return RateLimitFault(p["id"] != "request", float(p["refuse_s"]))


def _type_name(kind: type | tuple[type, ...]) -> str:
    return (
        "a number"
        if isinstance(kind, tuple)
        else {int: "an integer", str: "a string", bool: "true or false"}[kind]
    )


# --- corrupted frames ---------------------------------------------------------------------------

_NAN_MARK = 1.2345678901234567e-300


def corrupt(kind: str, channel: str, data: dict[str, Any]) -> bytes:
    """The notification for `data` on `channel`, corrupted as `kind` says."""
    if kind == "malformed":
        whole = _notification(channel, data)
        return whole[: len(whole) // 2]
    data = {**data, "bids": [list(e) for e in data["bids"]], "asks": [list(e) for e in data["asks"]]}
    first = (data["bids"] or data["asks"] or [None])[0]
    if kind == "wrong_types":
        data["change_id"] = str(data["change_id"])
        for entry in data["bids"] + data["asks"]:
            entry[-1] = str(entry[-1])
        return _notification(channel, data)
    if first is None:
        return _notification(channel, data)
    price_at = 1 if isinstance(first[0], str) else 0
    if kind == "negative_price":
        first[price_at] = -abs(first[price_at]) or -1.0
        return _notification(channel, data)
    first[price_at] = _NAN_MARK
    return _notification(channel, data).replace(orjson.dumps(_NAN_MARK), b"NaN", 1)


def phantom(channel: str, data: dict[str, Any], st: InstrumentState, crossing: bool) -> bytes:
    """The notification for `data` with one level the truth does not have (see the table above).

    The message was already applied to the simulator's book, so the level is chosen against the
    book after it: a free price on the walk's grid between the best and the 10th level, the deepest
    one first (bids first, then asks), else inside the spread, else a wrong size for a top-10 level
    this message does not touch. A new level stays wrong until an audit finds it, or until the walk
    adds a level at its price (then the feeder sees `new` on a level it has: inconsistent, a resync).
    `crossing`: a new bid one step above the best ask.
    """
    data = {**data, "bids": [list(e) for e in data["bids"]], "asks": [list(e) for e in data["asks"]]}
    inst, book, grid = st.inst, st.book, st.inst.grid
    touched = {side: {e[1] for e in data[side]} for side in ("bids", "asks")}
    ask = book.asks.best()
    if crossing and ask is not None:
        lots = book.asks.lots[ask]
        data["bids"].append(["new", inst.px(ask + grid), inst.amt(lots)])
        return _notification(channel, data)
    for name, side, sign in (("bids", book.bids, -1), ("asks", book.asks, 1)):
        top = side.top(10)
        if not top:
            continue
        best, worst = top[0][0], top[-1][0]
        for price in range(
            worst - sign * grid, best, -sign * grid
        ):  # deepest first: the walk rarely goes there
            if price not in side.lots and inst.px(price) not in touched[name]:
                data[name].append(["new", inst.px(price), inst.amt(top[0][1])])
                return _notification(channel, data)
    bid = book.bids.best()
    if bid is not None and ask is not None and ask - bid > grid:
        data["bids"].append(["new", inst.px(bid + grid), inst.amt(book.bids.lots[bid])])
        return _notification(channel, data)
    for name, side in (("bids", book.bids), ("asks", book.asks)):
        for price, lots in side.top(10):
            if inst.px(price) not in touched[name]:
                data[name].append(["change", inst.px(price), inst.amt(lots + 1)])
                return _notification(channel, data)
    return _notification(channel, data)


def _notification(channel: str, data: Any) -> bytes:
    return orjson.dumps(
        {"jsonrpc": "2.0", "method": "subscription", "params": {"channel": channel, "data": data}}
    )


def huge_frame(size: int) -> bytes:
    head = b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"sim.huge_frame","data":"'
    tail = b'"}}'
    return head + b"x" * max(0, size - len(head) - len(tail)) + tail


UNKNOWN_METHOD = b'{"jsonrpc":"2.0","method":"sim/unknown_method","params":{}}'
UNKNOWN_CHANNEL = (
    b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"sim.unknown_channel","data":{}}}'
)
MALFORMED = b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":'
HEARTBEAT = b'{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"heartbeat"}}'
TEST_REQUEST = b'{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"test_request"}}'
