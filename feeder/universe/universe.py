"""What a running feeder serves, for strategies: `universe()` and `wait_for(pattern)`.

Built on the instance's inventory segment (`inventory.py`): a `Universe` is one consistent snapshot of
its entries as `Instrument` objects, with the rings that carry each. `wait_for` waits, without polling
the file system, for an instrument matching a glob to be live (a listing the feeder has just picked
up shows there once its rings exist). Rules it keeps: reading never changes the inventory; a snapshot
never mixes two generations.
"""

from __future__ import annotations

import fnmatch
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from feeder.errors import FeederNotRunning, RingNotFound
from feeder.ring.chains import is_chain
from feeder.universe.inventory import ENDED, KIND_NAMES, LIVE, STREAM_BITS, InventoryReader, text

_OPTION_TYPES = {0: "", 1: "call", 2: "put"}
_FAR = 32503708800000  # Deribit's expiration_timestamp of perpetuals


@dataclass(frozen=True)
class Instrument:
    """One instrument the feeder serves (or served: `live` False once it ended)."""

    name: str
    instrument_id: int
    kind: str  # option, future, perpetual, spot
    live: bool
    expiration: datetime | None  # None for perpetuals
    strike: float | None  # options only
    option_type: str  # "call", "put", or "" when not an option
    tick_size: float
    contract_size: float
    min_trade_amount: float
    base_currency: str
    quote_currency: str
    settlement_currency: str
    price_index: str
    rings: dict[str, str]  # stream -> ring name (book.BTC-options, ticker.BTC-27DEC26 ...)
    listed_ns: int
    ended_ns: int

    @property
    def chain(self) -> bool:
        """Whether its records share chain rings (tell them apart by `instrument_id`)."""
        return any(is_chain(ring) for stream, ring in self.rings.items() if stream != "markprice")


def _instrument(e: np.void) -> Instrument:
    name, symbol, index = text(bytes(e["name"])), text(bytes(e["ring_symbol"])), text(bytes(e["price_index"]))
    rings = {
        stream: f"markprice.{index}" if stream == "markprice" else f"{stream}.{symbol}"
        for stream, bit in STREAM_BITS.items()
        if int(e["streams"]) & bit
    }
    expiry = int(e["expiration_ms"])
    strike = float(e["strike"])
    return Instrument(
        name=name,
        instrument_id=int(e["instrument_id"]),
        kind=KIND_NAMES.get(int(e["kind"]), "?"),
        live=int(e["state"]) == LIVE,
        expiration=None if expiry >= _FAR or expiry <= 0 else datetime.fromtimestamp(expiry / 1000, UTC),
        strike=None if math.isnan(strike) else strike,
        option_type=_OPTION_TYPES.get(int(e["option_type"]), ""),
        tick_size=float(e["tick_size"]),
        contract_size=float(e["contract_size"]),
        min_trade_amount=float(e["min_trade_amount"]),
        base_currency=text(bytes(e["base_currency"])),
        quote_currency=text(bytes(e["quote_currency"])),
        settlement_currency=text(bytes(e["settlement_currency"])),
        price_index=index,
        rings=rings,
        listed_ns=int(e["listed_ns"]),
        ended_ns=int(e["ended_ns"]),
    )


class Universe:
    """A snapshot of the instruments a feeder serves, by name and by id."""

    def __init__(self, generation: int, entries: np.ndarray):
        self.generation = generation
        everything = [_instrument(e) for e in entries if int(e["state"]) in (LIVE, ENDED)]
        self.ended: dict[str, Instrument] = {i.name: i for i in everything if not i.live}
        self.instruments: dict[str, Instrument] = {i.name: i for i in everything if i.live}
        self._by_id = {i.instrument_id: i for i in everything}

    def __len__(self) -> int:
        return len(self.instruments)

    def __iter__(self) -> Iterator[Instrument]:
        return iter(self.instruments.values())

    def __contains__(self, name: object) -> bool:
        return name in self.instruments

    def __getitem__(self, name: str) -> Instrument:
        return self.instruments[name]

    def get(self, name: str) -> Instrument | None:
        return self.instruments.get(name)

    def by_id(self, instrument_id: int) -> Instrument | None:
        """The instrument a record's `instrument_id` names (ended ones too), or None."""
        return self._by_id.get(instrument_id)

    def match(self, pattern: str) -> list[Instrument]:
        """Live instruments whose names match a glob (`BTC-*-C`), in listing order."""
        return [i for name, i in self.instruments.items() if fnmatch.fnmatchcase(name, pattern)]

    def __repr__(self) -> str:
        return f"<Universe generation={self.generation} live={len(self.instruments)} ended={len(self.ended)}>"


def universe(instance: str | None = None) -> Universe:
    """The instruments the running feeder of `instance` serves now (FeederNotRunning when there is none)."""
    with _open(instance) as inventory:
        return Universe(*inventory.entries())


def wait_for(pattern: str, timeout: float | None = None, instance: str | None = None) -> list[Instrument]:
    """Wait until at least one live instrument matches the glob `pattern` (a feeder that is starting
    is waited for too); returns every match. TimeoutError after `timeout` seconds."""
    deadline = None if timeout is None else time.monotonic() + timeout
    seen = -1
    while True:
        try:
            with InventoryReader(instance) as inventory:
                while not inventory.closed:
                    if inventory.generation != seen:
                        seen, entries = inventory.entries()
                        found = Universe(seen, entries).match(pattern)
                        if found:
                            return found
                    _pause(deadline, pattern)
        except RingNotFound:
            pass
        seen = -1
        _pause(deadline, pattern)


def _pause(deadline: float | None, pattern: str) -> None:
    if deadline is not None and time.monotonic() >= deadline:
        raise TimeoutError(f"no live instrument matched {pattern!r} in time")
    time.sleep(0.01)


def _open(instance: str | None) -> InventoryReader:
    try:
        return InventoryReader(instance)
    except RingNotFound:
        from feeder.ring.names import instance_name

        raise FeederNotRunning(
            f"no feeder runs for instance {instance_name(instance)!r} (no inventory segment): start one "
            f"with python -m feeder"
        ) from None
