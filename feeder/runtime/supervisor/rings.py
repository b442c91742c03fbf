"""The rings of a feeder instance: created here before any worker writes them, marked GAP when their
writer dies, removed at shutdown.

Rules it keeps:
- The supervisor owns every ring (`create_ring`); a ring keeps its name, records and readers across
  worker restarts, so readers never re-attach. Rings are kept by name: one can be created whenever an
  instrument appears.
- A dead worker's rings are marked at once (`feeder.ring.marking`, the one mechanism the replacement
  worker uses too): a book ring gets a GAP copy of its last book, an event ring a MARKER|GAP record.
  Marking is best effort: a ring that cannot be marked is logged and never stands in the way of the
  restart.
- `close_all` removes every ring (readers see `closed`); only after the writers stopped. The ring of an
  instrument that ended is marked closed at once (`mark_closed`) and removed later (`remove`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from feeder.ring import RingOwner, RingWriter, create_ring
from feeder.ring.marking import mark_gap, needs_mark

log = logging.getLogger("feeder.supervisor")


class RingRegistry:
    def __init__(self, instance: str):
        self.instance = instance
        self._owners: dict[str, RingOwner] = {}

    def __len__(self) -> int:
        return len(self._owners)

    def create(self, ring: str, record_type: str, capacity: int) -> None:
        self._owners[ring] = create_ring(ring, record_type, capacity, instance=self.instance)

    def mark_gap(self, rings: Iterable[str], writer_gone: str) -> None:
        """Tell the readers of `rings` at once that they are stale (their writer, `writer_gone`, died)."""
        for ring in rings:
            record_type = self._owners[ring].record_type
            try:
                if needs_mark(ring, record_type, self.instance):
                    with RingWriter.attach(ring, record_type, instance=self.instance) as writer:
                        mark_gap(writer)
            except Exception as exc:  # best effort: it must never stand in the way of the restart
                log.error("could not flag ring %s as GAP after %s died: %r", ring, writer_gone, exc)

    def mark_closed(self, ring: str) -> None:
        self._owners[ring].mark_closed()

    def remove(self, ring: str) -> None:
        owner = self._owners.pop(ring, None)
        if owner is not None:
            owner.close()

    def close_all(self) -> None:
        for owner in self._owners.values():
            owner.close()
