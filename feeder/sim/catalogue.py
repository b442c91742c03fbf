"""The catalogue: every instrument the simulator ever listed, which are live, and which get the rate.

Instruments are numbered in listing order: a catalogue index never changes or comes back, and the
`instrument_id` Deribit reports is 100001 + that index. `live` holds what clients can still see by
name (listed, not yet terminated); `by_name` everything ever listed (for the truth). `selection`
says which instruments the random walk moves ("active"): the names asked for and every listed
instrument matching a glob pattern among them (`BTC-*-C`), including those listed later; or,
for a count N, the first N listed at start.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, replace

from feeder.errors import ConfigError
from feeder.sim.chain import ChainSize, extra_options, listing, listing_day
from feeder.sim.instruments import REF_PRICE, Instrument, expiry_code, parse_name, to_date

FIRST_ID = 100001
MAX_COUNT = 5000
_GLOB = "*?["


@dataclass(frozen=True)
class Selection:
    names: frozenset[str]
    patterns: tuple[str, ...]

    def __call__(self, name: str) -> bool:
        return name in self.names or any(fnmatch.fnmatchcase(name, p) for p in self.patterns)


def is_pattern(name: str) -> bool:
    return any(c in name for c in _GLOB)


class Catalogue:
    def __init__(self, selection: Selection):
        self.instruments: list[Instrument] = []
        self.by_name: dict[str, int] = {}
        self.live: dict[str, int] = {}
        self.active: list[int] = []  # at start; the market keeps the current set
        self.selection = selection

    def add(self, inst: Instrument) -> Instrument:
        """List `inst` (its id assigned here); the numbered instrument."""
        index = len(self.instruments)
        inst = replace(inst, instrument_id=FIRST_ID + index)
        self.instruments.append(inst)
        self.by_name[inst.name] = self.live[inst.name] = index
        return inst

    def terminate(self, index: int) -> None:
        self.live.pop(self.instruments[index].name, None)


def build_catalogue(
    requested: tuple[str, ...] | int, now_ms: int, size: ChainSize | None = None
) -> Catalogue:
    """The catalogue for `requested` names and patterns (or a count of instruments) at `now_ms`."""
    listed = listing(now_ms, REF_PRICE, size or ChainSize(), listing_day(now_ms))
    names = {i.name for i in listed}
    if isinstance(requested, int):
        if not 1 <= requested <= MAX_COUNT:
            raise ConfigError("instruments", requested, f"a count must be between 1 and {MAX_COUNT}")
        extra = extra_options(now_ms, REF_PRICE)
        while len(listed) < requested:
            inst = next(extra)
            if inst.name not in names:
                names.add(inst.name)
                listed.append(inst)
        wanted = [i.name for i in listed[:requested]]
        selection = Selection(frozenset(), ())
    else:
        asked = list(dict.fromkeys(requested))
        if not asked:
            raise ConfigError("instruments", requested, "give at least one instrument name or a count")
        patterns = tuple(n for n in asked if is_pattern(n))
        for name in asked:
            if name not in names and not is_pattern(name):
                parsed = parse_name(name, now_ms, REF_PRICE.get(name[:3], 0.0))
                if parsed is None:
                    raise ConfigError("instruments", name, _expected(now_ms))
                names.add(name)
                listed.append(parsed)
        selection = Selection(frozenset(n for n in asked if not is_pattern(n)), patterns)
        for pattern in patterns:
            if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
                raise ConfigError(
                    "instruments", pattern, "the pattern matches no listed instrument (see get_instruments)"
                )
        exact = [n for n in asked if not is_pattern(n)]
        wanted = exact + [i.name for i in listed if i.name not in selection.names and selection(i.name)]
    catalogue = Catalogue(selection)
    for inst in listed:
        catalogue.add(inst)
    catalogue.active = [catalogue.by_name[n] for n in wanted]
    return catalogue


def _expected(now_ms: int) -> str:
    friday = next(
        d for d in (to_date(now_ms + n * 86_400_000).date() for n in range(1, 8)) if d.weekday() == 4
    )
    code = expiry_code(friday)
    return (
        "expected a Deribit name with a future expiry, such as BTC-PERPETUAL, "
        f"BTC-{code} or ETH-{code}-3000-C, or a glob pattern such as BTC-*-C"
    )
