"""How many records each ring holds (memory sized by rate), what it costs, and whether /dev/shm has room.

Pure except `check_free`, which asks the kernel how much /dev/shm has free. Rules it keeps:
- A ring's capacity comes from the config's `[capacity]` table, most specific first: a ring-name glob
  (`"book.BTC-options" = 262144`, any key with a `.`), then the instrument's kind (`option = {book =
  1024}`), then the stream (`book = 4096`, every ring of that stream), then the defaults below, which
  follow the update rates: a perpetual's book changes hundreds of times a second, an option's a few
  times a minute, and a chain ring carries a whole chain's rate. With them all BTC and ETH options,
  futures and perpetuals (about 1,600 instruments) take about 0.7 GB in per-instrument rings and
  about 0.13 GB with option chains.
- Nothing is created before the whole plan is known to fit: `check_free` compares the total with what
  /dev/shm has free and fails with the amount needed and the docker-compose `shm_size` to set.
"""

from __future__ import annotations

import fnmatch
import shutil
from collections.abc import Iterable, Mapping
from typing import Any

from feeder.errors import ConfigError, UsageError
from feeder.exchanges.deribit.channels import STREAM_RECORDS
from feeder.exchanges.deribit.instruments import KINDS
from feeder.ring.header import HEADER_SIZE
from feeder.ring.names import SHM_DIR
from feeder.ring.schema import record_schema

SHM = SHM_DIR
# Records per per-instrument ring, by kind and stream: about a minute or more of each kind's busiest rate.
KIND_CAPACITY: Mapping[str, Mapping[str, int]] = {
    "perpetual": {"book": 1 << 14, "trades": 1 << 12, "ticker": 1 << 12},
    "spot": {"book": 1 << 13, "trades": 1 << 12, "ticker": 1 << 11},
    "future": {"book": 1 << 12, "trades": 1 << 10, "ticker": 1 << 10},
    "option": {"book": 1 << 9, "trades": 1 << 8, "ticker": 1 << 9},
}
# Records per chain ring (a whole chain's rate), by stream.
CHAIN_CAPACITY: Mapping[str, int] = {
    "book": 1 << 17,
    "trades": 1 << 14,
    "ticker": 1 << 16,
    "markprice": 1 << 16,
}
RESERVE = 0.10  # /dev/shm room kept for listings at run time and for a replaced segment
MIB = 1 << 20


class SharedMemoryTooSmall(UsageError):
    """/dev/shm cannot hold the rings the feeder was asked to create."""


def check_capacity_table(table: Mapping[str, Any]) -> None:
    """ConfigError naming the first bad entry of a `[capacity]` table."""
    for key, value in table.items():
        if isinstance(value, Mapping):
            if key not in KINDS:
                raise ConfigError(f"capacity.{key}", value, f"a table only under a kind ({', '.join(KINDS)})")
            for stream, cap in value.items():
                _check_entry(f"capacity.{key}.{stream}", stream, cap)
        elif "." in key:
            _check_count(f"capacity.{key}", value)
        else:
            _check_entry(f"capacity.{key}", key, value)


def _check_entry(field: str, stream: str, value: Any) -> None:
    if stream not in STREAM_RECORDS:
        raise ConfigError(
            field, value, f"streams are {', '.join(STREAM_RECORDS)}; kinds {', '.join(KINDS)}; or a ring glob"
        )
    _check_count(field, value)


def _check_count(field: str, value: Any) -> None:
    if not (
        isinstance(value, int) and not isinstance(value, bool) and value >= 16 and value & (value - 1) == 0
    ):
        raise ConfigError(field, value, "a power of two, at least 16 (records per ring)")


def capacity(table: Mapping[str, Any], ring: str, kind: str | None, chain: bool) -> int:
    """Records for `ring` (its stream first in its name); `kind` of its instrument (None for a chain).
    `table` is the config's, checked by `check_capacity_table`: its numbers are ints."""
    stream = ring.partition(".")[0]
    records: int
    for key, value in table.items():
        if "." in key and not isinstance(value, Mapping) and fnmatch.fnmatchcase(ring, key):
            records = value
            return records
    if not chain and kind is not None:
        per_kind = table.get(kind)
        if isinstance(per_kind, Mapping) and stream in per_kind:
            records = per_kind[stream]
            return records
    if stream in table and not isinstance(table[stream], Mapping):
        records = table[stream]
        return records
    if chain:
        return CHAIN_CAPACITY[stream]
    return KIND_CAPACITY[kind or "perpetual"].get(stream, CHAIN_CAPACITY[stream])


def segment_bytes(stream: str, records: int) -> int:
    """The size of a ring's segment: its header and its slots."""
    return HEADER_SIZE + records * record_schema(STREAM_RECORDS[stream]).size


def total_bytes(rings: Iterable[tuple[str, int]]) -> int:
    """Bytes of shared memory for (ring, capacity) pairs."""
    return sum(segment_bytes(ring.partition(".")[0], cap) for ring, cap in rings)


def shm_size_advice(needed: int) -> str:
    """A docker-compose `shm_size` that holds `needed` bytes with room to spare, e.g. `1280m`."""
    mib = -(-int(needed * (1 + 2 * RESERVE) + 64 * MIB) // (256 * MIB)) * 256
    return f"{mib // 1024}g" if mib % 1024 == 0 else f"{mib}m"


def check_free(needed: int, path: str = SHM) -> int:
    """The bytes free in `path`; SharedMemoryTooSmall when `needed` (plus the reserve) does not fit."""
    usage = shutil.disk_usage(path)
    if needed * (1 + RESERVE) > usage.free:
        raise SharedMemoryTooSmall(
            f"the rings need {needed / MIB:,.0f} MiB of shared memory and {path} has {usage.free / MIB:,.0f} MiB "
            f"free (of {usage.total / MIB:,.0f} MiB): give it more (docker-compose: shm_size: "
            f"{shm_size_advice(needed)} on the feeder service; docker run --shm-size={shm_size_advice(needed)}), "
            f"or lower the ring capacities ([capacity] in the config), or select fewer instruments"
        )
    return usage.free
