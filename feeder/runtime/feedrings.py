"""A feed's ring writers: created (the feed owns them) or attached (a supervisor owns them), taken over
from a previous writer, closed.

Attaching takes over from the previous writer, which may have died mid-stream: a ring it left looking live
is marked GAP at once (a GAP copy of a book, a MARKER|GAP record on an event ring, `feeder.ring.marking`, as
the supervisor does), and a trades ring's last real trade_seq (not a marker's) seeds the adapter's gap check,
per instrument on a chain ring. `writers` is one dict for the feed's life: the receive path holds it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from feeder.exchanges.deribit.adapter import DeribitAdapter
from feeder.exchanges.deribit.channels import Route
from feeder.ring import RingWriter
from feeder.ring.chains import is_chain
from feeder.ring.marking import last_content, last_trades, mark_gap


class FeedRings:
    """The writers of one feed's rings, by ring name."""

    def __init__(self, adapter: DeribitAdapter, attach: bool, capacity: int, instance: str | None):
        self.adapter, self.attach, self.capacity, self.instance = adapter, attach, capacity, instance
        self.writers: dict[str, RingWriter] = {}

    def open(self, wanted: Iterable[tuple[str, str]]) -> None:
        """Writers for (ring, record type) pairs not open yet; none of them if one fails."""
        opened: list[str] = []
        try:
            for ring, record_type in dict(wanted).items():
                if ring in self.writers:
                    continue
                if self.attach:
                    writer = self.writers[ring] = RingWriter.attach(ring, record_type, instance=self.instance)
                    opened.append(ring)
                    self._take_over(writer)
                else:
                    self.writers[ring] = RingWriter.create(
                        ring, record_type, self.capacity, instance=self.instance
                    )
                    opened.append(ring)
        except BaseException:
            for ring in opened:
                self.writers.pop(ring).close()
            raise

    def _take_over(self, writer: RingWriter) -> None:
        mark_gap(writer)
        if writer.record_type != "trade":
            return
        routes: Mapping[str, Route] = self.adapter.routes
        trades = [r for r in routes.values() if r.ring == writer.name]
        if is_chain(writer.name):
            last = last_trades(writer.name, self.instance)
            for route in trades:
                if route.instrument_id in last:
                    self.adapter.continue_trades(route.channel, last[route.instrument_id])
        elif trades:
            record = last_content(writer.name, self.instance)
            if record is not None:
                self.adapter.continue_trades(trades[0].channel, int(record["trade_seq"]))

    def close_unused(self, used: set[str]) -> list[str]:
        """Close the writers of rings nothing feeds any more; returns their names."""
        closed = [ring for ring in self.writers if ring not in used]
        for ring in closed:
            self.writers.pop(ring).close()
        return closed

    def close(self) -> None:
        writers = list(self.writers.values())
        self.writers.clear()
        for writer in writers:
            writer.close()
