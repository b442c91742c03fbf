"""What the feeder serves for a resolved selection: each instrument's rings, their sizes, and the units
that go to one worker each. Pure: instruments and settings in, plans out (the supervisor acts on them).

Rules it keeps:
- An instrument of a kind listed in `chains` writes into the chain rings of its group and kind
  (`book.BTC-options` ...), any other into rings of its own (`book.BTC`, `ticker.BTC-27DEC26`); an
  option's mark price always goes to the chain `markprice.<price_index>`.
- A unit is what one worker must write alone, since every ring has one writer: an instrument with
  rings of its own, a whole chain, one markprice chain, or the universe channels. Units go to the
  least loaded worker, the heaviest first; a listing at run time joins its chain's worker, or the
  least loaded one. Loads are weighted by how busy a kind's streams are (a perpetual's book changes
  hundreds of times a second, an option's a few times a minute).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from feeder.core.placement import Placement, least_loaded, place
from feeder.exchanges.deribit.channels import ChannelMap
from feeder.exchanges.deribit.instruments import InstrumentInfo
from feeder.ring.chains import MARKPRICE, chain_symbol, instrument_group, is_chain
from feeder.ring.header import HEADER_SIZE
from feeder.ring.schema import record_schema
from feeder.runtime.sizing import capacity
from feeder.universe.inventory import STREAM_BITS

WEIGHT = {"perpetual": 100, "spot": 20, "future": 20, "option": 1, MARKPRICE: 5, "universe": 1}
UNIVERSE = "universe"


def _weight_of(ring: str, info: InstrumentInfo) -> int:
    """What writing `ring` for `info` weighs (a markprice chain ring weighs as one)."""
    return WEIGHT[MARKPRICE if ring.startswith(f"{MARKPRICE}.") else info.kind]


@dataclass(frozen=True)
class Served:
    """One instrument as the feeder serves it."""

    info: InstrumentInfo
    ring_symbol: str  # its rings are <stream>.<ring_symbol> (markprice aside)
    rings: Mapping[str, str]  # stream -> ring
    units: Mapping[str, str]  # ring -> the unit whose worker writes it

    @property
    def streams_mask(self) -> int:
        return sum(STREAM_BITS[stream] for stream in self.rings)


@dataclass(frozen=True)
class RingSpec:
    name: str
    record_type: str
    capacity: int
    unit: str

    @property
    def size_bytes(self) -> int:
        return HEADER_SIZE + self.capacity * record_schema(self.record_type).size


@dataclass(frozen=True)
class Layout:
    """The settings that decide rings and their sizes."""

    streams: tuple[str, ...]
    chains: tuple[str, ...]
    capacity: Mapping[str, Any]
    channels: ChannelMap

    def serve(self, info: InstrumentInfo) -> Served:
        chain = info.kind in self.chains
        symbol = chain_symbol(instrument_group(info.name), info.kind) if chain else None
        rings: dict[str, str] = {}
        units: dict[str, str] = {}
        for stream in self.streams:
            if stream == MARKPRICE:
                if info.kind == "option":
                    ring = rings[stream] = f"{MARKPRICE}.{info.price_index}"
                    units[ring] = ring
                continue
            ring = rings[stream] = (
                f"{stream}.{symbol}" if chain else self.channels.ring_name(stream, info.name)
            )
            units[ring] = symbol or info.name
        own = symbol or self.channels.ring_name("book", info.name).partition(".")[2]
        return Served(info, own, rings, units)

    def ring_spec(self, ring: str, unit: str, kind: str) -> RingSpec:
        return RingSpec(
            ring, self.channels.record_type(ring), capacity(self.capacity, ring, kind, is_chain(ring)), unit
        )


@dataclass
class Plan:
    """Every ring, every instrument and every unit's worker; grows and shrinks at run time."""

    layout: Layout
    workers: int  # how many workers there are
    served: dict[str, Served] = field(default_factory=dict)  # instrument -> how it is served
    rings: dict[str, RingSpec] = field(default_factory=dict)
    worker_of: dict[str, int] = field(default_factory=dict)  # unit -> worker
    loads: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.loads = [0] * self.workers

    def add(self, infos: Iterable[InstrumentInfo]) -> tuple[list[Served], list[RingSpec]]:
        """Serve more instruments: (how each is served, the rings to create), units placed."""
        new_served, new_rings = [], []
        for info in infos:
            if info.name in self.served:
                continue
            served = self.layout.serve(info)
            self.served[info.name] = served
            new_served.append(served)
            for ring, unit in served.units.items():
                if ring not in self.rings:
                    spec = self.layout.ring_spec(ring, unit, info.kind)
                    self.rings[ring] = spec
                    new_rings.append(spec)
                self._place(unit, _weight_of(ring, info))
        return new_served, new_rings

    def _place(self, unit: str, weight: int) -> int:
        worker = self.worker_of.get(unit)
        if worker is None:
            worker = self.worker_of[unit] = least_loaded(self.loads)
        self.loads[worker] += weight
        return worker

    def place_universe(self) -> int:
        """The worker that subscribes the instrument.state channels."""
        return self._place(UNIVERSE, WEIGHT[UNIVERSE])

    def remove(self, names: Iterable[str]) -> tuple[list[Served], list[str]]:
        """Stop serving instruments: (what they were, the rings no instrument uses any more)."""
        gone = [self.served.pop(name) for name in names if name in self.served]
        used = {ring for s in self.served.values() for ring in s.rings.values()}
        dropped = []
        for served in gone:
            for ring, unit in served.units.items():
                self.loads[self.worker_of[unit]] -= _weight_of(ring, served.info)
                if ring not in used and ring in self.rings:
                    del self.rings[ring]
                    dropped.append(ring)
        return gone, dropped

    def routes(self, worker: int, served: Iterable[Served] | None = None) -> list[tuple[str, str, int]]:
        """(ring, instrument, instrument_id) of everything `worker` writes (of `served`, else of all)."""
        out = []
        for s in self.served.values() if served is None else served:
            for ring in s.rings.values():
                if self.worker_of[s.units[ring]] == worker:
                    out.append((ring, s.info.name, s.info.instrument_id))
        return out

    def rings_of(self, worker: int) -> list[str]:
        return sorted(ring for ring, spec in self.rings.items() if self.worker_of[spec.unit] == worker)

    @property
    def size_bytes(self) -> int:
        return sum(spec.size_bytes for spec in self.rings.values())


def initial(
    layout: Layout,
    workers: int,
    infos: Sequence[InstrumentInfo],
    cpus: Sequence[int] = (0,),
    busy_poll: bool = False,
) -> tuple[Plan, Placement]:
    """The plan at start and its placement (`feeder.core.placement`: workers to CPUs, warnings): units
    heaviest first, each to the least loaded worker by weight; never more workers than units."""
    units: dict[str, list[str]] = {}  # unit -> its rings
    weight: dict[str, int] = {}
    for info in infos:
        for ring, unit in layout.serve(info).units.items():
            rings = units.setdefault(unit, [])
            if ring not in rings:
                rings.append(ring)
            weight[unit] = weight.get(unit, 0) + _weight_of(ring, info)
    order = sorted(units, key=lambda u: -weight[u])
    placement = place([units[u] for u in order], workers, cpus, busy_poll, [weight[u] for u in order])
    plan = Plan(layout, len(placement.rings))
    for worker, rings in enumerate(placement.rings):
        for unit in order:
            if units[unit][0] in rings:
                plan.worker_of[unit] = worker
    plan.add(infos)
    return plan, placement


def layout_of(config: Any, authenticated: bool) -> Layout:
    """The layout a `FeederConfig` asks for."""
    channels = ChannelMap(config.channel_config(), authenticated=authenticated)
    return Layout(tuple(config.streams), tuple(config.chains), dict(config.capacity), channels)
