"""Replay recordings into rings, so strategies can be tested against a recorded day with the same
RingReader code. Two kinds of recordings:

- Worker sessions (`feeder --record DIR`: every frame, JSONL): the frames of all recordings in a directory
  are merged by receive time (each instrument lived on one connection, so its order is the recorded
  order) and fed through the Deribit adapter; rings are created for every market-data channel found;
  each record's ts_recv is the recorded receive time. A gap in the recording produces a GAP record
  exactly as it did live, and the resubscription snapshot that followed it is in the recording. A run with
  `redundancy = 2` recorded each leg (`worker0-<time>.jsonl` and `worker0-<time>-b.jsonl`): both are fed
  through the same arbiter as live (`feeder.exchanges.deribit.legs`), so each change is published once.
- Ring recordings (`feeder record OUT ...`: records, .npy or Parquet): each ring's records are published
  again into a ring of the same name, all rings merged in their recorded publish order. Every field is
  the recorded one but `seq` (the new ring's, from 0) and `ts_publish` (the replay's own). Where the
  recording has a hole (records the recorder was lapped on, or the time between two recorder runs), the
  ring gets a GAP|MARKER record first: readers are told, as they were live. Damaged recordings are refused.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from feeder.core.recording import Entry, read_entries
from feeder.errors import UsageError
from feeder.exchanges.deribit.adapter import DeribitAdapter
from feeder.exchanges.deribit.channels import STREAM_RECORDS, ChannelConfig, ChannelMap, Route
from feeder.exchanges.deribit.legs import Legs
from feeder.exchanges.deribit.streams import Emit
from feeder.recordings import Recording, read, recordings_in
from feeder.recordings.files import META
from feeder.ring import RingWriter
from feeder.ring.gaps import marker
from feeder.ring.schema import record_schema


@dataclass
class ReplayStats:
    frames: int = 0
    notifications: int = 0
    records: int = 0
    rings: int = 0
    seconds: float = 0.0
    markers: int = 0  # GAP|MARKER records published where a ring recording has a hole

    def summary(self) -> str:
        if self.frames:
            source = f"{self.notifications} notifications ({self.frames} frames)"
        else:
            source = f"{self.records - self.markers} recorded records (+{self.markers} GAP markers)"
        return f"replayed {source} into {self.rings} rings: {self.records} records in {self.seconds:.1f} s"


def recordings(directory: str | Path) -> list[Path]:
    paths = sorted(Path(directory).glob("*.jsonl"))
    if not paths:
        raise UsageError(
            f"no recordings in {directory}: neither worker sessions (*.jsonl, from `feeder --record DIR`) "
            f"nor ring recordings (from `feeder record OUT RING...`)"
        )
    return paths


def open_replay(
    directory: str | Path, instance: str | None = None, capacity: int = 1 << 16
) -> Replayer | RecordingReplayer:
    """The replayer for what `directory` holds: ring recordings, or worker sessions."""
    if not Path(directory).is_dir():
        raise UsageError(f"{directory} is not a directory")
    if recordings_in(directory):
        is_ring = (Path(directory) / META).exists()  # its events.jsonl is not a worker session
        if not is_ring and list(Path(directory).glob("*.jsonl")):
            raise UsageError(
                f"{directory} holds both worker sessions (*.jsonl) and ring recordings: replay one kind "
                f"(give a ring recording's directory, or move the sessions)"
            )
        return RecordingReplayer(directory, instance, capacity)
    return Replayer(directory, instance, capacity)


def leg_of(path: Path) -> int:
    """Which leg recorded a worker session: 1 for leg b's (`...-b.jsonl`), else 0."""
    return 1 if path.stem.endswith("-b") else 0


def _legged(path: Path) -> Iterator[tuple[int, Entry]]:
    leg = leg_of(path)
    return ((leg, e) for e in read_entries(path))


def _frames(paths: list[Path]) -> Iterator[tuple[int, Entry]]:
    """(leg, frame) of every received text frame, merged by receive time."""
    merged = heapq.merge(*(_legged(p) for p in paths), key=lambda le: le[1].ts)
    return ((leg, e) for leg, e in merged if e.dir == "in" and e.type == "text")


def _notification(entry: Entry) -> dict[str, Any] | None:
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
    for _, entry in _frames(paths):
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
        self.legs: Legs | None = None
        if any(leg_of(p) for p in self.paths):
            self.legs = Legs(self.adapter, 2, self._publish)
            self.legs.connected(0)
            self.legs.connected(1)
        self.writers: dict[str, RingWriter] = {}
        self._published = 0
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
        for leg, entry in _frames(self.paths):
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
            if self.legs is None:
                self._publish(self.adapter.feed(msg, entry.ts))
            else:
                self.legs.feed(leg, msg, entry.ts)
                self.legs.take_requests()  # what followed a resubscription live is in the recording
        stats.records = self._published
        stats.seconds = time.monotonic() - started
        return stats

    def _publish(self, emitted: list[Emit]) -> None:
        for ring, records in emitted:
            self.writers[ring].publish_batch(records)
            self._published += len(records)

    def close(self) -> None:
        writers, self.writers = self.writers, {}
        for writer in writers.values():
            writer.close()

    def __enter__(self) -> Replayer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RecordingReplayer:
    """Creates a ring per ring recording in a directory, publishes the records, removes the rings on `close()`."""

    def __init__(self, directory: str | Path, instance: str | None = None, capacity: int = 1 << 16):
        self.recordings = [_checked(read(path)) for path in recordings_in(directory)]
        if not self.recordings:
            raise UsageError(f"no ring recordings in {directory}")
        self.writers: list[RingWriter] = []
        try:
            for rec in self.recordings:
                self.writers.append(
                    RingWriter.create(rec.meta["ring"], rec.meta["record_type"], capacity, instance=instance)
                )
        except BaseException:
            self.close()
            raise

    def run(self, speed: float | None = None) -> ReplayStats:
        """Publish every recorded record in publish order; speed None = as fast as possible."""
        stats = ReplayStats(rings=len(self.writers))
        parts = [with_markers(rec.records) for rec in self.recordings]
        stats.markers = sum(len(p) for p in parts) - sum(len(rec) for rec in self.recordings)
        ts = np.concatenate([p["ts_publish"] for p in parts]) if parts else np.empty(0, np.int64)
        ring = np.concatenate([np.full(len(p), i) for i, p in enumerate(parts)])
        where = np.concatenate([np.arange(len(p)) for p in parts])
        order = np.argsort(ts, kind="stable")
        started = time.monotonic()
        first_ts = int(ts[order[0]]) if len(order) else 0
        runs = np.flatnonzero(np.diff(ring[order])) + 1
        for run in np.split(order, runs):
            if not len(run):
                continue
            i = int(ring[run[0]])
            batch = parts[i][where[run]]
            self._publish(self.writers[i], batch, speed, started, first_ts)
            stats.records += len(batch)
        stats.seconds = time.monotonic() - started
        return stats

    def _publish(
        self, writer: RingWriter, batch: np.ndarray, speed: float | None, started: float, first_ts: int
    ) -> None:
        """Publish `batch` in slices of at most the ring's capacity, each once its recorded time has come."""
        due = (batch["ts_publish"] - first_ts) / 1e9 / speed if speed else np.zeros(len(batch))
        done = 0
        while done < len(batch):
            elapsed = time.monotonic() - started
            ready = int(np.searchsorted(due, elapsed, side="right"))
            if ready <= done:
                time.sleep(min(float(due[done]) - elapsed, 1.0))
                continue
            end = min(ready, done + writer.capacity)
            writer.publish_batch(np.ascontiguousarray(batch[done:end]))
            done = end

    def close(self) -> None:
        writers, self.writers = self.writers, []
        for writer in writers:
            writer.close()

    def __enter__(self) -> RecordingReplayer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _checked(rec: Recording) -> Recording:
    """A recording fit to replay: undamaged, and of the layout the rings have now."""
    if rec.unexplained:
        raise UsageError(f"recording {rec.path} is damaged, not replayed: " + "; ".join(rec.unexplained[:3]))
    kind = rec.meta.get("record_type")
    if rec.dtype != record_schema(kind).dtype:
        raise UsageError(
            f"recording {rec.path} holds {kind} records of another layout (fingerprint "
            f"{rec.meta.get('fingerprint')}): replay it with the feeder version that recorded it"
        )
    return rec


def with_markers(records: np.ndarray) -> np.ndarray:
    """The records with a GAP|MARKER record (no content; the next record's timestamps) before each seq hole."""
    holes = np.flatnonzero(np.diff(records["seq"].astype(np.int64)) != 1) + 1
    if not len(holes):
        return records
    markers = marker(records.dtype, records["ts_recv"][holes])
    markers["ts_publish"] = records["ts_publish"][holes]  # its place in the recorded publish order
    return np.insert(records, holes, markers)
