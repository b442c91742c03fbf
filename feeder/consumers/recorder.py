"""`feeder record OUT RING...`: record rings to .npy chunks or Parquet files, one directory per ring.

Each ring's records (seq, flags, timestamps and payload, exactly as in the ring) go to `OUT/<ring>/` in
slices rotated by record count or time and written atomically (see feeder/recordings/ for the formats
and the loader). Records this recorder could not read (it was lapped by the writer) are recorded
as "lost" seq ranges, so `load()` can tell a lapped recorder from a damaged recording. It follows rings
across feeder restarts (a new session per segment).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from feeder import UsageError
from feeder.consumers import common
from feeder.consumers.follow import Attached, Closed, Lost, NewWriter, RingFollower, wait_any
from feeder.recordings import STORAGES, Chunk, RecordingWriter
from feeder.recordings.arrow import require_pyarrow

PROG = "feeder record"

EPILOG = """\
output: OUT/<ring>/meta.json, OUT/<ring>/events.jsonl and
  --format npy      OUT/<ring>/chunk-00000001.npy ...  (a slice each; numpy only)
  --format parquet  OUT/<ring>/2026-11-25T20.parquet ... (an hour each, a row group per slice; the
                    slices of the hour being recorded are part-*.parquet files until it is over)
A crash loses at most the records of the slice being buffered. Load with
  from feeder.recordings import load, load_frame; records = load("OUT/book.BTC")
check from the shell with `feeder recording OUT`, and replay with `feeder replay OUT`.

examples:
  feeder record rec book.BTC book.ETH trades.BTC
  feeder record rec book.BTC --format parquet --chunk-seconds 5 --duration 3600
"""


def build_parser() -> argparse.ArgumentParser:
    p = common.parser(PROG, "Record feeder rings to .npy chunks or Parquet files.", EPILOG)
    p.add_argument("out", metavar="OUT", help="output directory (one subdirectory per ring)")
    p.add_argument("rings", nargs="+", metavar="RING", help="ring names, e.g. book.BTC trades.ETH")
    p.add_argument(
        "--format",
        choices=sorted(STORAGES),
        default="npy",
        help="npy: numpy chunk files (default, no extra dependency); parquet: hourly Parquet files "
        "(pip install 'feeder[parquet]')",
    )
    p.add_argument(
        "--chunk-records",
        type=common.positive(int),
        default=65536,
        metavar="N",
        help="records per slice: a chunk file, or a Parquet row group (default 65536)",
    )
    p.add_argument(
        "--chunk-seconds",
        type=common.positive(float),
        default=60.0,
        metavar="S",
        help="write a slice once its first record is S seconds old (default 60)",
    )
    p.add_argument(
        "--start",
        choices=("newest", "oldest"),
        default="newest",
        help="newest: from now on (default); oldest: also every record the ring still holds",
    )
    common.add_bounds(p)
    return p


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    return common.run(PROG, lambda: _main(ns))


def check_plan(ns: argparse.Namespace, instance: str) -> dict[str, Any]:
    """What `--check` prints: the validated settings."""
    return {
        "program": "record",
        "instance": instance,
        "out": ns.out,
        "rings": ns.rings,
        "format": ns.format,
        "chunk_records": ns.chunk_records,
        "chunk_seconds": ns.chunk_seconds,
        "start": ns.start,
        "count": ns.count,
        "duration_s": ns.duration,
        "wait_s": ns.wait,
    }


def _main(ns: argparse.Namespace) -> int:
    common.check_rings(ns.rings)
    instance = common.resolve_instance(ns.instance)
    out = Path(ns.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"OUT {str(out)!r} exists and is not a directory")
    if ns.format == "parquet":
        require_pyarrow()
    if ns.check:
        return common.print_plan(check_plan(ns, instance))
    stop = common.Stop(ns.duration)
    recorders: list[RingRecorder] = []
    try:
        for ring in ns.rings:
            reader = common.attach(ring, instance=instance, start=ns.start, wait_s=ns.wait, stop=stop)
            follower = RingFollower(reader)
            recorders.append(RingRecorder(follower, out, ns.chunk_records, ns.chunk_seconds, ns.format))
        record(recorders, stop, ns.count)
    finally:
        for r in recorders:
            r.close()
    return common.EXIT_OK


class RingRecorder:
    """One ring into its directory: records, events and chunk rotation."""

    def __init__(
        self, follower: RingFollower, out: Path, chunk_records: int, chunk_seconds: float, storage: str
    ):
        self.follower = follower
        self.ring = follower.ring
        reader = follower.reader
        meta = {
            "ring": reader.name,
            "instance": reader.instance,
            "record_type": reader.record_type,
            "fingerprint": hex(reader.info.fingerprint),
            "capacity": reader.capacity,
        }
        self.writer = RecordingWriter(
            out / self.ring, meta, reader.dtype, chunk_records, chunk_seconds, storage
        )
        for name in self.writer.removed_temporaries:
            common.say(f"{self.ring}: removed {name}, an unfinished chunk of an earlier recorder")
        self.lost = 0
        for event in follower.events():  # the attach: the session starts now, even if nothing comes
            self._event(event)

    def step(self, max_records: int | None) -> int:
        """Read what is new, record it; returns how many records were read."""
        records = self.follower.read(max_records)
        for event in self.follower.events():
            self._event(event)
        for chunk in self.writer.add(records):
            self._chunk(chunk)
        return len(records)

    def _event(self, event: object) -> None:
        w = self.writer
        if isinstance(event, Attached):
            w.event("start", seq=event.seq, created_ns=event.created_ns, epoch=event.epoch)
            if event.again:
                common.say(f"{self.ring}: re-attached to a new segment at seq {event.seq}: new session")
        elif isinstance(event, Lost):
            w.event("lost", first=event.first, count=event.count)
            self.lost += event.count
            common.say(
                f"{self.ring}: LOST {event.count} records (seq {event.first}-{event.last}): the recorder "
                f"was lapped; recorded as a loss"
            )
        elif isinstance(event, NewWriter):
            w.event("writer", epoch=event.epoch)
        elif isinstance(event, Closed):
            common.say(f"{self.ring}: the feeder closed the ring; waiting for it to come back")

    def _chunk(self, chunk: Chunk | None) -> None:
        if chunk is not None:
            common.say(
                f"{self.ring}: chunk {chunk.path.name}: {chunk.records} records, "
                f"seq {chunk.first_seq}-{chunk.last_seq}"
            )

    def tick(self, now: float) -> None:
        if self.writer.due(now):
            self._chunk(self.writer.flush())

    def close(self) -> None:
        self._chunk(self.writer.close())
        self.follower.close()
        common.say(
            f"summary {self.ring}: recorded {self.writer.recorded} records in {self.writer.path}, "
            f"lost {self.lost}"
        )


def record(recorders: list[RingRecorder], stop: common.Stop, count: int | None) -> None:
    """Record until stopped, or until `count` records were read in total."""
    followers = [r.follower for r in recorders]
    total = 0
    while not stop and (count is None or total < count):
        got = 0
        for r in recorders:
            room = None if count is None else count - total - got
            if room == 0:
                break
            got += r.step(room)
        total += got
        now = time.monotonic()
        for r in recorders:
            r.tick(now)
        if not got:
            wait_any(followers, stop.left(0.1))


if __name__ == "__main__":
    sys.exit(main())
