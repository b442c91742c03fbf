"""Shared-memory rings: one writer, many readers, numpy structured records, by name.

`create_ring` / `RingOwner` (the supervisor), `RingWriter` (a worker, or both roles at once with
`RingWriter.create`), `RingReader` (anyone; it can sleep in the kernel, and serve coroutines),
`list_rings` / `clean_stale` (inspection). Layouts and protocols: schemas/README.md.
"""

from feeder.ring.flags import CROSSED, FINAL, GAP, LOCKED, MARKER, SNAPSHOT
from feeder.ring.inventory import RingInfo, clean_stale, list_rings
from feeder.ring.owner import RingOwner, create_ring
from feeder.ring.reader import RingReader
from feeder.ring.writer import RingWriter

__all__ = [
    "CROSSED",
    "FINAL",
    "GAP",
    "LOCKED",
    "MARKER",
    "SNAPSHOT",
    "RingInfo",
    "RingOwner",
    "RingReader",
    "RingWriter",
    "clean_stale",
    "create_ring",
    "list_rings",
]
