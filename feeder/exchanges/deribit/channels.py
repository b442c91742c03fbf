"""Ring names <-> Deribit channels.

Owns the mapping between a ring (`<stream>.<symbol>`) and the Deribit channel that feeds it:

| ring                     | channel (interval `raw` shown)           | record |
|--------------------------|------------------------------------------|--------|
| `book.BTC`               | `book.BTC-PERPETUAL.raw`                 | book   |
| `book.BTC-27DEC24`       | `book.BTC-27DEC24.raw`                   | book   |
| `trades.ETH-PERPETUAL`   | `trades.ETH-PERPETUAL.raw`               | trade  |
| `ticker.BTC`             | `ticker.BTC-PERPETUAL.raw`               | ticker |
| `book.BTC-options`       | `book.<every BTC option>.raw`            | book (a chain ring) |
| `markprice.btc_usd`      | `markprice.options.btc_usd`              | markprice (a chain ring) |

A book ring holds 10 levels per side (`book` records) unless `depth` gives it 25 or 50 (`book25`,
`book50` records), by ring name or glob (`{"book.BTC*": 50}`: an exact name wins, then the first
glob that matches, in order).

Rules it keeps:
- A symbol is an alias (default `BTC` -> `BTC-PERPETUAL`, `ETH` -> `ETH-PERPETUAL`; configurable) or a
  full instrument name. Ring names for an instrument use its alias when it has one.
- The interval is `raw` (needs an authenticated connection) when credentials are configured and
  `100ms` without, unless set explicitly. Books may instead use Deribit's grouped snapshots
  (`book.{instrument}.{group}.{depth}.{interval}`) by setting `book_depth`, which must fit in the
  ring's levels (a 20-level snapshot needs a ring of depth 25 or 50: never cut silently).
- Each channel feeds exactly one ring: two rings naming the same channel are a configuration error.
  A chain ring (`feeder.ring.chains`) is fed by many channels, one per instrument, each route naming
  its instrument; `markprice.<index>` is fed by the one `markprice.options.<index>` channel.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from types import MappingProxyType

from feeder.errors import ConfigError
from feeder.ring.chains import MARKPRICE, is_chain
from feeder.ring.names import check_ring_name
from feeder.ring.schema import BOOK_TYPES

STREAM_RECORDS: Mapping[str, str] = MappingProxyType(
    {"book": "book", "trades": "trade", "ticker": "ticker", MARKPRICE: "markprice"}
)
INTERVALS = ("raw", "100ms", "agg2")
BOOK_GROUPS = ("none", "1", "2", "5", "10", "25", "100", "250")
BOOK_DEPTHS = (1, 10, 20)
DEFAULT_ALIASES: Mapping[str, str] = MappingProxyType({"BTC": "BTC-PERPETUAL", "ETH": "ETH-PERPETUAL"})

_INSTRUMENT_RE = re.compile(r"^[A-Za-z0-9_-]{1,48}$")


@dataclass(frozen=True)
class ChannelConfig:
    """How ring names become Deribit channels; validated at construction."""

    aliases: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_ALIASES))
    interval: str | None = None  # None: `raw` with credentials, `100ms` without
    book_group: str = "none"  # grouped book channels only
    book_depth: int | None = None  # set (1, 10 or 20) to use grouped book snapshots
    depth: Mapping[str, int] = field(default_factory=dict)  # book ring name or glob -> levels (10, 25, 50)

    def __post_init__(self) -> None:
        if self.interval is not None and self.interval not in INTERVALS:
            raise ConfigError(
                "interval", self.interval, f"one of {', '.join(INTERVALS)}, or None for automatic"
            )
        if self.book_group not in BOOK_GROUPS:
            raise ConfigError("book_group", self.book_group, f"one of {', '.join(BOOK_GROUPS)}")
        if self.book_depth is not None and self.book_depth not in BOOK_DEPTHS:
            raise ConfigError("book_depth", self.book_depth, "1, 10, 20, or None for incremental books")
        *most, last = map(str, BOOK_TYPES)
        levels = f"{', '.join(most)} or {last}"
        for pattern, depth in self.depth.items():
            if not isinstance(pattern, str) or not pattern.startswith("book."):
                raise ConfigError(
                    f"depth[{pattern!r}]", depth, "keys are book ring names or globs, such as 'book.BTC*'"
                )
            if depth not in BOOK_TYPES or isinstance(depth, bool):
                raise ConfigError(
                    f"depth[{pattern!r}]", depth, f"{levels} levels per side (the book record types)"
                )
        for alias, instrument in self.aliases.items():
            if not _INSTRUMENT_RE.match(str(alias)) or not _INSTRUMENT_RE.match(str(instrument)):
                raise ConfigError(
                    f"aliases[{alias!r}]", instrument, "alias and instrument of letters, digits, '_' or '-'"
                )

    def interval_for(self, authenticated: bool) -> str:
        """The Deribit interval in use: the configured one, else raw when authenticated, else 100ms."""
        return self.interval or ("raw" if authenticated else "100ms")

    def levels(self, ring: str) -> int:
        """Levels per side of a book ring: its own `depth` entry, else the first glob matching it, else 10."""
        depth = self.depth.get(ring)
        if depth is None:
            depth = next((d for pattern, d in self.depth.items() if fnmatchcase(ring, pattern)), 10)
        return depth


@dataclass(frozen=True)
class Route:
    """One ring and the channel that feeds it."""

    ring: str
    stream: str  # book | trades | ticker
    record_type: str  # book | trade | ticker
    instrument: str
    channel: str
    grouped: bool = False  # a grouped book: a whole top-depth snapshot in every message
    instrument_id: int = 0  # the exchange's id, written into every record (0 when unknown)

    @property
    def needs_auth(self) -> bool:
        """Deribit serves raw channels only to authenticated connections."""
        return self.channel.endswith(".raw")


class ChannelMap:
    """Turns ring names into routes for one connection (authenticated or not)."""

    def __init__(self, config: ChannelConfig | None = None, *, authenticated: bool = False):
        self.config = config or ChannelConfig()
        self.interval = self.config.interval_for(authenticated)
        self._short = {instrument: alias for alias, instrument in self.config.aliases.items()}

    def instrument(self, symbol: str) -> str:
        """The instrument a ring symbol names (an alias or a full instrument name)."""
        instrument = self.config.aliases.get(symbol, symbol)
        if not _INSTRUMENT_RE.match(instrument):
            raise ConfigError(
                "symbol", symbol, "an alias or a Deribit instrument name (letters, digits, '_', '-')"
            )
        return instrument

    def record_type(self, ring: str) -> str:
        """What a ring holds: its stream's record type, a book's by its depth (`book`, `book25`, `book50`)."""
        stream = ring.partition(".")[0]
        record_type = _check_stream(stream, ring)
        return BOOK_TYPES[self.config.levels(ring)] if stream == "book" else record_type

    def ring_name(self, stream: str, instrument: str) -> str:
        """The ring for an instrument's stream, using the alias when there is one (`book.BTC`)."""
        _check_stream(stream, stream)
        return check_ring_name(f"{stream}.{self._short.get(instrument, instrument)}")

    def route(self, ring: str, instrument: str | None = None, instrument_id: int = 0) -> Route:
        """The route of one ring name; a chain ring needs the `instrument` the route carries (the
        routes of `markprice.<index>` share its one channel, which carries every option of the index)."""
        stream, _, symbol = check_ring_name(ring).partition(".")
        record_type = _check_stream(stream, ring)
        if stream == MARKPRICE:
            if instrument is None:
                raise ConfigError("ring", ring, "a markprice route names its option")
            return Route(
                ring, stream, record_type, instrument, f"markprice.options.{symbol}", False, instrument_id
            )
        if instrument is None:
            if is_chain(ring):
                raise ConfigError("ring", ring, "a chain ring's route names its instrument")
            instrument = self.instrument(symbol)
        elif not _INSTRUMENT_RE.match(instrument):
            raise ConfigError(
                "instrument", instrument, "a Deribit instrument name (letters, digits, '_', '-')"
            )
        config = self.config
        if stream == "book":
            levels = config.levels(ring)
            record_type = BOOK_TYPES[levels]
            if config.book_depth is not None:
                if config.book_depth > levels:
                    raise ConfigError(
                        "book_depth", config.book_depth,
                        f"at most the {levels} levels per side of ring {ring!r}'s records (give the ring a "
                        f"depth of {min(d for d in BOOK_TYPES if d >= config.book_depth)}: a grouped snapshot "
                        f"is never cut)",
                    )  # fmt: skip
                channel = f"book.{instrument}.{config.book_group}.{config.book_depth}.{self.interval}"
                return Route(ring, stream, record_type, instrument, channel, True, instrument_id)
        channel = f"{stream}.{instrument}.{self.interval}"
        return Route(ring, stream, record_type, instrument, channel, instrument_id=instrument_id)

    def routes(self, rings: Iterable[str]) -> dict[str, Route]:
        """Routes keyed by channel; two rings on one channel are refused."""
        by_channel: dict[str, Route] = {}
        for ring in rings:
            route = self.route(ring)
            other = by_channel.get(route.channel)
            if other is not None and other.ring != ring:
                raise ConfigError(
                    "rings", [other.ring, ring], f"one ring per channel: both map to {route.channel!r}"
                )
            by_channel[route.channel] = route
        return by_channel


def _check_stream(stream: str, where: str) -> str:
    record_type = STREAM_RECORDS.get(stream)
    if record_type is None:
        raise ConfigError("ring", where, f"a stream among {', '.join(STREAM_RECORDS)} (e.g. 'book.BTC')")
    return record_type
