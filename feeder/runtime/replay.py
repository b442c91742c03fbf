"""Replay recorded sessions (`--record DIR`) through the Deribit adapter into rings.

Strategies can then be tested against a recorded day with the same RingReader code. The frames of all
recordings in a directory are merged by receive time (each instrument lived on one connection, so its
order is the recorded order); rings are created for every market-data channel found; each record's
ts_recv is the recorded receive time (ts_publish is the replay's own). A gap in the recording produces a
GAP record exactly as it did live, and the resubscription snapshot that followed it is in the recording.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from feeder.core.recording import Entry, read_entries
from feeder.errors import UsageError
from feeder.exchanges.deribit.adapter import DeribitAdapter
from feeder.exchanges.deribit.channels import STREAM_RECORDS, ChannelConfig, ChannelMap, Route
from feeder.ring import RingWriter


@dataclass
class ReplayStats:
    frames: int = 0
    notifications: int = 0
    records: int = 0
    rings: int = 0
    seconds: float = 0.0


def recordings(directory: str | Path) -> list[Path]:
    paths = sorted(Path(directory).glob("*.jsonl"))
    if not paths:
        raise UsageError(
            f"no recordings (*.jsonl) in {directory}: record with `python -m feeder --record DIR`"
        )
    return paths


def _frames(paths: list[Path]) -> Iterator[Entry]:
    merged = heapq.merge(*(read_entries(p) for p in paths), key=lambda e: e.ts)
    return (e for e in merged if e.dir == "in" and e.type == "text")


def _notification(entry: Entry) -> dict | None:
    try:
        msg = orjson.loads(entry.data)
    except orjson.JSONDecodeError:
        return None
    if isinstance(msg, dict) and msg.get("method") == "subscription":
        return msg
    return None


def routes_in(paths: list[Path], aliases: ChannelConfig | None = None) -> dict[str, Route]:
    """The market-data channels present in the recordings, with the ring each one fills."""
    channels = ChannelMap(aliases or ChannelConfig())
    out: dict[str, Route] = {}
    for entry in _frames(paths):
        msg = _notification(entry)
        channel = (msg or {}).get("params", {}).get("channel")
        if not isinstance(channel, str) or channel in out:
            continue
        parts = channel.split(".")
        if len(parts) == 3 and parts[0] in STREAM_RECORDS:
            ring = channels.ring_name(parts[0], parts[1])
            out[channel] = Route(ring, parts[0], STREAM_RECORDS[parts[0]], parts[1], channel)
    return out


class Replayer:
    """Creates the rings of a recording directory, replays into them, removes them on `close()`."""

    def __init__(self, directory: str | Path, instance: str | None = None, capacity: int = 1 << 16):
        self.paths = recordings(directory)
        routes = routes_in(self.paths)
        if not routes:
            raise UsageError(f"the recordings in {directory} hold no book, trades or ticker notifications")
        self.adapter = DeribitAdapter(routes.values())
        self.writers: dict[str, RingWriter] = {}
        try:
            for route in routes.values():
                self.writers[route.ring] = RingWriter.create(
                    route.ring, route.record_type, capacity, instance=instance
                )
        except BaseException:
            self.close()
            raise

    def run(self, speed: float | None = None) -> ReplayStats:
        """Feed every recorded notification through the adapter; speed None = as fast as possible."""
        stats = ReplayStats(rings=len(self.writers))
        started = time.monotonic()
        first_ts = None
        for entry in _frames(self.paths):
            stats.frames += 1
            msg = _notification(entry)
            if msg is None:
                continue
            if speed is not None:
                first_ts = entry.ts if first_ts is None else first_ts
                delay = (entry.ts - first_ts) / 1e9 / speed - (time.monotonic() - started)
                if delay > 0:
                    time.sleep(delay)
            stats.notifications += 1
            for ring, records in self.adapter.feed(msg, entry.ts):
                self.writers[ring].publish_batch(records)
                stats.records += len(records)
        stats.seconds = time.monotonic() - started
        return stats

    def close(self) -> None:
        writers, self.writers = self.writers, {}
        for writer in writers.values():
            writer.close()

    def __enter__(self) -> Replayer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
