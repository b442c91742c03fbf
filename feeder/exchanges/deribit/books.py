"""One Deribit book channel inside the adapter: sync state, the book, its record, its live audit.

Rules it keeps (the adapter's module doc has the whole contract):
- A change is applied only when its `prev_change_id` is the last `change_id`; duplicates and stale
  messages are dropped and counted; a gap, a bad message or an action the book contradicts publishes
  one GAP record at once (the last published top-N, flagged GAP) and asks for a resubscription.
- One pass over the common message (a change chained onto a live book): its header is checked
  here, its entries are validated as they are applied (`L2Book`), and only what changed in the top N
  is written into the record. Every other message goes through `parse_book` first. Both accept
  exactly the same messages; when the one pass stops at an entry, `parse_book` names what was wrong.
- A book that is crossed or locked after a message (best bid >= best ask) is evidence of a missed or
  corrupt update: with `crossed="resync"` (Deribit's default) that record goes out CROSSED|GAP and the
  book resyncs like after a gap; with `crossed="flag"` it goes out CROSSED and the book stays live.
- While an audit request for the book is out, every record published as valid enters the audit
  window (`feeder.core.audit`) as the exact bytes of its level arrays (and none does otherwise). A
  snapshot from `public/get_order_book` is packed into the same bytes by the same book code and
  compared there; a mismatch is published as GAP at once (the book resyncs) and logged with both
  books side by side on one line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from feeder.core.audit import BookAudit, Failure, Verdict
from feeder.core.book import BookLayout, L2Book, book_layout
from feeder.errors import BadMessage, SchemaError
from feeder.exchanges.deribit.channels import Route
from feeder.exchanges.deribit.parse import (
    BookSnapshot,
    BookUpdate,
    parse_book,
    parse_grouped_book,
    parse_order_book,
)
from feeder.exchanges.deribit.records import packer, scratch
from feeder.exchanges.deribit.streams import COMMON, MS, ChannelFeed, Emit, Resubscribe
from feeder.exchanges.deribit.sync import BookSync, SyncEvent, next_state
from feeder.ring.flags import CROSSED, FINAL, GAP, LOCKED, SNAPSHOT
from feeder.ring.gaps import COPY_CLEARS, gap_copy
from feeder.ring.schema import BOOK_TYPES, field_offset, record_schema

if TYPE_CHECKING:
    from feeder.exchanges.deribit.adapter import DeribitAdapter

log = logging.getLogger("feeder.exchanges.deribit.adapter")

CROSSED_MODES = ("resync", "flag")
AUDIT_WAIT_NS = 5_000_000_000  # how long an audit ahead of the stream waits for the stream to reach it
_HEAD = (*COMMON, "change_id", "prev_change_id", "bid_count", "ask_count")
_BOOK_OFF, _pack_book = packer("book", _HEAD)
_BOOK_DTYPE = record_schema("book").dtype
if any(
    field_offset(record_schema(t).dtype, f) != field_offset(_BOOK_DTYPE, f)
    for t in BOOK_TYPES.values()
    for f in _HEAD
):
    raise SchemaError("every book record type must share the book header (one packer fills them all)")
_NO_SNAPSHOT = 0xFFFFFFFF ^ SNAPSHOT
_NOT_LOCKED = 0xFFFFFFFF ^ (COPY_CLEARS | LOCKED)
_LIVE = BookSync.LIVE


class BookFeed(ChannelFeed):
    """One book channel: sync state, the book, its scratch record and its audit."""

    def __init__(self, adapter: DeribitAdapter, route: Route):
        super().__init__(adapter, route)
        self.state = BookSync.AWAITING_SNAPSHOT
        self.record = scratch(route.record_type)
        self.record["instrument_id"] = self.iid  # GAP copies before the first book name it too
        # ignore: numpy declares ndarray a Buffer only for Python >= 3.12 (PEP 688)
        self.buf = memoryview(self.record.view(np.uint8))  # type: ignore[arg-type]
        self.layout = layout = book_layout(self.record.dtype)
        self.book = L2Book(self.buf, layout)
        self.levels = self.buf[layout.bid_offset : layout.levels_end]  # what the audit compares
        self.emit: Emit = (route.ring, self.record)
        self.parse: Callable[[Any, str], BookUpdate] = parse_grouped_book if route.grouped else parse_book
        self.incremental = not route.grouped  # changes chained onto the book (the one pass takes them)
        self.resync_crossed = adapter.crossed == "resync"
        self.change_id = 0
        self.gaps = self.resyncs = self.snapshots = self.crossed = 0
        self.audit = BookAudit()
        self.window_append = self.audit.window.append  # the hot path's part of BookAudit.published

    def __call__(self, data: Any, recv_ns: int) -> None:
        if self.state is _LIVE and self.incremental and type(data) is dict:
            try:
                change_id, prev, timestamp = data["change_id"], data["prev_change_id"], data["timestamp"]
                bids, asks, kind, name = data["bids"], data["asks"], data["type"], data["instrument_name"]
            except KeyError:
                kind = None
            if (
                kind == "change"
                and prev == self.change_id
                and type(prev) is int
                and type(change_id) is int
                and change_id > prev
                and type(timestamp) is int
                and timestamp >= 0
                and type(bids) is list
                and type(asks) is list
                and name == self.instrument
            ):
                book = self.book
                if book.bids.apply(bids) or book.asks.apply(asks):
                    self.refused(data, recv_ns)
                    return
                self.stats.book_changes += 1
                self.publish(change_id, prev, timestamp * MS, recv_ns, 0, bids, asks)
                return
        self.general(data, recv_ns)

    def general(self, data: Any, recv_ns: int) -> None:
        """Any message but a change chained onto a live book: validated whole first (parse.py)."""
        try:
            update = self.parse(data, self.instrument)
        except BadMessage as exc:
            self.rejected(data, exc, recv_ns)
            return
        if self.state is _LIVE:
            self.live(update, recv_ns)
        elif update.snapshot:
            self.snapshot(update, recv_ns, SNAPSHOT)
        else:
            self.stats.skipped += 1

    def live(self, update: BookUpdate, recv_ns: int) -> None:
        """A valid message on a live book that the one pass did not take: drop it, take a snapshot, or
        find the book broken."""
        stats = self.stats
        if update.change_id <= self.change_id:
            stats.duplicates += 1
        elif update.snapshot:
            self.snapshot(update, recv_ns, 0 if self.route.grouped else SNAPSHOT)
        elif update.prev_change_id != self.change_id:
            stats.gaps += 1
            self.gaps += 1
            self.broken("gap", recv_ns)
        else:  # chained, and parse_book found nothing wrong: the book contradicts an entry
            book = self.book
            if book.bids.apply(update.bids) or book.asks.apply(update.asks):
                stats.inconsistent += 1
                self.broken("inconsistent action", recv_ns)
                return
            stats.book_changes += 1
            self.publish(
                update.change_id, update.prev_change_id, update.timestamp_ms * MS, recv_ns, 0,
                update.bids, update.asks,
            )  # fmt: skip

    def refused(self, data: Any, recv_ns: int) -> None:
        """The one pass stopped at an entry: a bad one (rejected, parse_book names it) or one the book
        contradicts. The levels may be half updated: the book is broken either way."""
        try:
            parse_book(data, self.instrument)
        except BadMessage as exc:
            self.rejected(data, exc, recv_ns)
            return
        self.stats.inconsistent += 1
        self.broken("inconsistent action", recv_ns)

    def rejected(self, data: Any, exc: BadMessage, recv_ns: int) -> None:
        """A bad message: counted; the book is broken if it could have changed it."""
        self.reject(exc)
        if self.state is BookSync.LIVE or self.route.grouped or _may_be_snapshot(data):
            self.broken("bad message", recv_ns)

    def snapshot(self, update: BookSnapshot, recv_ns: int, flags: int) -> None:
        self.book.load(update.bids, update.asks)
        self.state = next_state(self.state, SyncEvent.SNAPSHOT)
        self.stats.snapshots += 1
        self.snapshots += 1
        self.publish(update.change_id, 0, update.timestamp_ms * MS, recv_ns, flags)

    def publish(
        self,
        change_id: int,
        prev: int,
        ts_exchange: int,
        recv_ns: int,
        flags: int,
        bids: Any = (),
        asks: Any = (),
    ) -> None:
        """The record after an applied message (`bids`/`asks`: its entries, for what changed in the top
        N): valid, or found crossed or wrong by a pending audit."""
        self.change_id = change_id
        book = self.book
        bid_side, ask_side = book.bids, book.asks
        if bid_side.touched:
            bid_side.write(bids)
        if ask_side.touched:
            ask_side.write(asks)
        bid_count, ask_count = bid_side.count, ask_side.count
        if bid_count and ask_count and book.crossed():
            flags |= CROSSED
            self.stats.crossed += 1
            self.crossed += 1
            if self.resync_crossed:
                flags = (flags & _NO_SNAPSHOT) | GAP
                self.distrust("crossed book")
        audit = self.audit
        if not flags & GAP and (audit.recording or audit.pending is not None):
            top = bytes(self.levels)
            if audit.recording:
                self.window_append((change_id, top))
            if audit.pending is not None and audit.settle(change_id, top, recv_ns) is Verdict.FAILED:
                flags = (flags & _NO_SNAPSHOT) | GAP
                self.audit_failed()
        flags |= self.locked
        _pack_book(
            self.buf, _BOOK_OFF, flags, self.iid, ts_exchange, recv_ns, change_id, prev, bid_count, ask_count
        )
        self.stats.records += 1
        self.out.append(self.emit)

    def distrust(self, reason: str) -> None:
        """Stop trusting the book: state GAP, ask for a fresh snapshot, forget its audit history."""
        self.state = next_state(self.state, SyncEvent.BROKEN)
        self.stats.resyncs += 1
        self.resyncs += 1
        self.request(Resubscribe(self.route.channel, reason))
        self.audit.reset(reason)

    def broken(self, reason: str, recv_ns: int) -> None:
        """Stop trusting the book: GAP record (once), then ask for a fresh snapshot."""
        before = self.state
        self.distrust(reason)
        if before is not BookSync.GAP:
            self.publish_gap(recv_ns)

    def disconnected(self, now_ns: int) -> None:
        before = self.state
        self.state = next_state(before, SyncEvent.DISCONNECTED)
        self.audit.reset("disconnected")
        if before is BookSync.LIVE:
            self.publish_gap(now_ns)

    def publish_gap(self, recv_ns: int) -> None:
        """Re-publish the last top-N (or an empty book) as its GAP copy (`feeder.ring.gaps`): the scratch
        record always holds the last published record, since the book writes its levels only when a
        message applied whole and only `publish` writes the rest."""
        gap_copy(self.buf, recv_ns)
        self.stats.records += 1
        self.out.append(self.emit)

    def lock(self, locked: int, now_ns: int) -> None:
        """The currency was locked (LOCKED) or unlocked (0): a copy of the last book at once, so flagged."""
        if locked != self.locked:
            self.locked = locked
            if self.state is BookSync.AWAITING_SNAPSHOT:
                return  # nothing was published: there is no book to flag
            record = self.record
            record["flags"] = (int(record["flags"][0]) & _NOT_LOCKED) | locked
            record["ts_recv"] = now_ns
            self.stats.records += 1
            self.out.append(self.emit)

    def final(self, now_ns: int) -> None:
        """The instrument ended: its last book once more as a GAP copy, flagged FINAL; nothing follows."""
        self.state = next_state(self.state, SyncEvent.DISCONNECTED)
        gap_copy(self.buf, now_ns)
        self.record["flags"] |= FINAL
        self.stats.records += 1
        self.out.append(self.emit)

    # --- the live audit ------------------------------------------------------------------------------

    @property
    def auditable(self) -> bool:
        """Worth an audit now: a live book of a channel that carries the exchange's own levels."""
        return self.state is BookSync.LIVE and not self.route.grouped

    def audit_started(self) -> None:
        """A `public/get_order_book` for this book goes out now: keep what is published until the answer."""
        if self.state is BookSync.LIVE:
            self.audit.start(self.change_id, bytes(self.levels))

    def check(self, result: Any, now_ns: int) -> Verdict:
        """Judge the exchange's `public/get_order_book` answer against what was published."""
        try:
            snapshot = parse_order_book(result, self.instrument)
        except BadMessage as exc:
            self.reject(exc)
            return self.audit.not_verifiable("bad get_order_book answer")
        if self.state is not BookSync.LIVE:
            return self.audit.not_verifiable("the book was not live when the answer came")
        verdict = self.audit.check(
            snapshot.change_id, packed_levels(snapshot, self.layout), now_ns, AUDIT_WAIT_NS
        )
        if verdict is Verdict.FAILED:
            self.audit_failed()
            self.publish_gap(now_ns)
        return verdict

    def audit_failed(self) -> None:
        failure = self.audit.last_failure
        assert failure is not None
        self.stats.audit_failures += 1
        log.warning("audit FAILED for %s: %s", self.route.channel, side_by_side(failure))
        self.distrust("audit mismatch")


def packed_levels(snapshot: BookSnapshot, layout: BookLayout) -> bytes:
    """A snapshot's top-N packed exactly as a ring record's level arrays (the same book code does it)."""
    buf = bytearray(layout.levels_end)
    book = L2Book(buf, layout)
    book.load(snapshot.bids, snapshot.asks)
    book.write()
    return bytes(buf[layout.bid_offset :])


def side_by_side(failure: Failure, levels: int = 5) -> str:
    """One line: change_id, then each side's top levels as ours|theirs, differing ones marked with *."""
    depth = len(failure.ours) // 32  # prices and sizes of both sides, float64
    ours, theirs = (np.frombuffer(b, "<f8").reshape(4, depth) for b in (failure.ours, failure.theirs))
    parts = [f"change_id {failure.change_id} (feeder|exchange)"]
    for name, px, sz in (("bids", 0, 1), ("asks", 2, 3)):
        cells = []
        for i in range(depth):
            a, b = (ours[px, i], ours[sz, i]), (theirs[px, i], theirs[sz, i])
            if i >= levels and a == b:
                continue
            cells.append(f"{a[0]:g}x{a[1]:g}|{b[0]:g}x{b[1]:g}{'*' if a != b else ''}")
        parts.append(f"{name} " + " ".join(cells))
    return "; ".join(parts)


def _may_be_snapshot(data: Any) -> bool:
    """Whether a rejected book payload might have been the snapshot we wait for."""
    if type(data) is not dict:
        return True
    return data.get("type") == "snapshot" or ("type" not in data and not data.get("prev_change_id"))
