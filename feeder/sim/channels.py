"""Subscription channel names: which ones exist and what they mean.

Pure. `parse_channel` turns a channel name into a `ChannelSpec` or None (unknown or terminated
instrument, interval, group or depth: Deribit silently leaves such channels out of the subscribe
result). `raw` channels need an authenticated connection (13778 otherwise); `user.*` channels need
one too and are simply left out when it is missing. `instrument.state.{kind}.{currency}` takes the
kinds and currencies Deribit names (those the simulator does not list, such as spot or USDC,
are valid channels that never publish).
"""

from __future__ import annotations

from dataclasses import dataclass

INTERVALS = ("raw", "100ms", "agg2")
GROUPS = ("none", "1", "2", "5", "10", "25", "100", "250")
DEPTHS = ("1", "10", "20")
USER_KINDS = ("future", "option", "spot", "future_combo", "option_combo", "any")
INDEXES = ("btc_usd", "eth_usd")
STATE_KINDS = ("future", "option", "spot", "future_combo", "option_combo", "combo")
STATE_CURRENCIES = ("BTC", "ETH", "USDC", "USDT", "any")


@dataclass(frozen=True, slots=True)
class ChannelSpec:
    name: str
    kind: str  # book, grouped, trades, ticker, quote, index, markprice, states, platform, orders, user_trades
    instrument: int | None = None  # catalogue index
    interval: str = "raw"
    group: str = "none"
    depth: int = 0
    index_name: str = ""
    currency: str = "any"  # user.* by kind/currency
    inst_kind: str = "any"

    @property
    def private(self) -> bool:
        return self.kind in ("orders", "user_trades")

    @property
    def raw(self) -> bool:
        return self.interval == "raw" and self.kind in ("book", "grouped", "trades", "ticker")


def parse_channel(name: str, by_name: dict[str, int]) -> ChannelSpec | None:
    """The spec of a valid channel name, None for anything the simulator does not publish."""
    if not isinstance(name, str):
        return None
    parts = name.split(".")
    head, rest = parts[0], parts[1:]
    if head == "user" and rest and rest[0] in ("orders", "trades"):
        return _user(name, rest[0], rest[1:], by_name)
    if head == "deribit_price_index":
        return ChannelSpec(name, "index", index_name=rest[0]) if rest in ([i] for i in INDEXES) else None
    if head == "markprice":
        ok = len(rest) == 2 and rest[0] == "options" and rest[1] in INDEXES
        return ChannelSpec(name, "markprice", index_name=rest[1]) if ok else None
    if head == "instrument":
        ok = len(rest) == 3 and rest[0] == "state" and rest[1] in STATE_KINDS and rest[2] in STATE_CURRENCIES
        return ChannelSpec(name, "states", currency=rest[2], inst_kind=rest[1]) if ok else None
    if name == "platform_state":
        return ChannelSpec(name, "platform")
    if not rest or rest[0] not in by_name:
        return None
    inst, args = by_name[rest[0]], rest[1:]
    if head == "quote":
        return ChannelSpec(name, "quote", inst) if not args else None
    if head in ("trades", "ticker") and len(args) == 1 and args[0] in INTERVALS:
        return ChannelSpec(name, head, inst, args[0])
    if head == "book" and len(args) == 1 and args[0] in INTERVALS:
        return ChannelSpec(name, "book", inst, args[0])
    if head == "book" and len(args) == 3 and args[0] in GROUPS and args[1] in DEPTHS and args[2] in INTERVALS:
        return ChannelSpec(name, "grouped", inst, args[2], group=args[0], depth=int(args[1]))
    return None


def _user(name: str, what: str, args: list[str], by_name: dict[str, int]) -> ChannelSpec | None:
    kind = "orders" if what == "orders" else "user_trades"
    if len(args) == 2 and args[0] in by_name and args[1] in INTERVALS:
        return ChannelSpec(name, kind, by_name[args[0]], args[1])
    if len(args) == 3 and args[0] in USER_KINDS and args[1] in ("BTC", "ETH", "any") and args[2] in INTERVALS:
        return ChannelSpec(name, kind, None, args[2], currency=args[1], inst_kind=args[0])
    return None
