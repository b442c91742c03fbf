"""The replica: writes what a mirror publishes into local rings, at the source's seqs (see wire.py).

Each source ring gets a local ring of the same name, record type and capacity, owned by this process; the
source's records land there byte for byte (`RingWriter.publish_verbatim`), so a local `RingReader` sees
what a reader on the feeder host sees. The decisions are track.py's; this module only carries them out:
- Seqs that went missing on the way are asked of JetStream first (with `jetstream`), as far as the
  local ring can still hold them; the ring's live messages wait meanwhile. A late joiner asks for a
  ring's worth of history the same way before its first live batch.
- Whatever is still missing becomes a GAP/MARKER record (gaps.py) and skipped seqs that readers count
  lost. Nothing is skipped in silence.
- A new writer epoch upstream re-attaches the local writer (local readers see an epoch change); a new
  incarnation of the source ring replaces the local ring (local readers see it closed, as upstream).
- At a clean stop every ring gets a last GAP/MARKER record, then is closed and removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from feeder.bridge.gaps import compose, gap_record
from feeder.bridge.natsconn import NatsConfig, connect
from feeder.bridge.repair import StreamRing
from feeder.bridge.status import RingFigures, Status, write_status
from feeder.bridge.track import Plan, Span, Track, history, judge, reachable
from feeder.bridge.wire import (
    BadBatch,
    BatchHeader,
    ForeignLayout,
    RingPatterns,
    Subjects,
    decode_header,
    decode_records,
)
from feeder.errors import RingError
from feeder.ring import RingOwner, RingWriter, clean_stale, create_ring
from feeder.ring.chains import is_chain

log = logging.getLogger("feeder.bridge.replica")

STATUS_S = 1.0
REPAIR_LIMIT = 100_000  # stored messages read for one repair
QUEUE_LIMIT = 100_000  # live messages of a ring held during its repair; beyond, they become missing seqs


@dataclass(frozen=True)
class ReplicaConfig:
    nats: NatsConfig
    instance: str
    source: str
    rings: RingPatterns
    jetstream: bool = False
    repair_timeout_s: float = 10.0


@dataclass
class LocalRing:
    """The local copy of one source ring."""

    name: str
    owner: RingOwner
    writer: RingWriter
    track: Track
    figures: RingFigures
    _last: np.ndarray | None = None  # the last batch written
    upstream: int = 0  # the furthest seq the mirror has accounted for
    queue: list[tuple[Any, bool]] | None = None  # messages waiting for a repair; None when live

    @property
    def chain(self) -> bool:
        """A chain ring (many instruments): its holes get one chain-wide marker."""
        return is_chain(self.name)

    def follows(self, header: BatchHeader, n: int) -> bool:
        """The batch is the very next one, complete, from the same writer: write it as it is."""
        track = self.track
        return (
            header.first == track.next
            and header.end - header.first == n
            and header.epoch == track.epoch
            and header.identity == track.identity
            and self.queue is None
        )

    def new_epoch(self, epoch: int) -> None:
        """A new writer upstream: so here too (local readers count an epoch change)."""
        self.writer.close()
        self.writer = RingWriter.attach(
            self.name, self.track.identity.record_type, instance=self.owner.instance
        )
        self.track = Track(self.track.identity, epoch, self.track.next)

    def write(self, records: np.ndarray) -> None:
        capacity = self.writer.capacity
        if len(records) <= capacity:
            self.writer.publish_verbatim(records)
        else:
            for at in range(0, len(records), capacity):
                self.writer.publish_verbatim(records[at : at + capacity])
        if len(records):
            self._last = records

    @property
    def last(self) -> np.void | None:
        """The last record written: the book a GAP copy repeats."""
        return self._last[-1] if self._last is not None else None

    def close(self) -> None:
        """A last GAP/MARKER record (the copy is no longer live), then the ring is closed and removed."""
        with contextlib.suppress(Exception):
            if self.track.next is not None:
                seq = max(self.writer.write_seq, self.track.next)
                self.writer.publish_verbatim(
                    gap_record(
                        self.writer.dtype, self.writer.record_type, self.last, seq, time.time_ns(), self.chain
                    )
                )
        self.writer.close()
        self.owner.close()


class Replica:
    def __init__(self, config: ReplicaConfig):
        self.config = config
        self.subjects = Subjects(config.source)
        self.status = Status("replica", config.instance, config.source, config.nats.describe())
        self.rings: dict[str, LocalRing] = {}
        self.refused: dict[str, str] = {}
        self.nc: Any = None
        self._subs: list[Any] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._logged: set[tuple[str, str]] = set()
        self._matches: dict[str, bool] = {}

    async def connect(self, timeout: float = 30.0) -> None:
        for info in clean_stale(self.config.instance):
            log.info("removed stale ring %s left by a previous run", info.name)
        self.nc = await connect(
            self.config.nats.named(f"feeder-replica-{self.config.instance}"),
            timeout,
            on_error=self._on_error,
            on_disconnected=self._on_disconnected,
            on_reconnected=self._on_reconnected,
        )
        self.status.connected = True
        for subject in self.config.rings.filters(self.subjects):
            self._subs.append(await self.nc.subscribe(subject, cb=self._on_message))
        log.info(
            "replicating %s from %s into instance %r%s",
            ", ".join(self.config.rings.globs),
            self.config.nats.describe(),
            self.config.instance,
            " (JetStream repair on)" if self.config.jetstream else "",
        )

    async def _on_error(self, exc: Exception) -> None:
        self.status.errors += 1
        self.status.last_error = repr(exc)
        log.warning("NATS: %r", exc)

    async def _on_disconnected(self) -> None:
        self.status.connected = False
        if self.status.running:
            log.warning(
                "disconnected from NATS; reconnecting (what is missed meanwhile becomes GAPs or repairs)"
            )

    async def _on_reconnected(self) -> None:
        self.status.connected = True
        self.status.reconnects += 1
        log.info("reconnected to NATS")

    # --- messages --------------------------------------------------------------------------------

    async def _on_message(self, msg: Any) -> None:
        try:
            name = self.subjects.ring_of(msg.subject)
        except BadBatch as exc:
            self._bad(msg.subject, exc)
            return
        if not self._wanted(name):
            return
        local = self.rings.get(name)
        if local is not None and local.queue is not None:
            if len(local.queue) < QUEUE_LIMIT:  # else dropped: the next message shows its seqs missing
                local.queue.append((msg, True))
            return
        self._take(name, msg, allow_repair=True)

    def _wanted(self, name: str) -> bool:
        wanted = self._matches.get(name)
        if wanted is None:
            wanted = self._matches[name] = self.config.rings(name)
        return wanted and name not in self.refused

    def _bad(self, name: str, exc: Exception) -> None:
        self.status.ring(name).bad_batches += 1
        key = (name, type(exc).__name__)
        if key not in self._logged:  # once per ring and kind: a bad source must not flood the log
            self._logged.add(key)
            log.error("ring %s: refused a batch: %s", name, exc)

    def _take(self, name: str, msg: Any, allow_repair: bool) -> None:
        try:
            header = decode_header(msg.headers)
            records = decode_records(header, msg.data)
        except BadBatch as exc:
            self._bad(name, exc)
            if isinstance(exc, ForeignLayout):  # every batch of this ring would be refused: stop trying
                self.refused[name] = str(exc)
                self.status.ring(name).state, self.status.ring(name).problem = "refused", str(exc)
            return
        self._apply(name, header, records, allow_repair, msg)

    def _apply(
        self, name: str, header: BatchHeader, records: np.ndarray, allow_repair: bool, msg: Any = None
    ) -> None:
        local = self.rings.get(name)
        if local is not None and local.follows(header, len(records)):
            local.write(records)  # the batch that was expected, whole: nothing to decide
            local.track = Track(header.identity, header.epoch, header.end)
            if header.end > local.upstream:
                local.upstream = header.end
            figures = local.figures
            if len(records) == 1:  # the common case at low rates, without numpy
                figures.carried_one(records.nbytes, int(records["ts_publish"][0]), time.time_ns())
                figures.position = header.end
                figures.lag_seq = local.upstream - header.end
            else:
                self._carried(local, records, header.end)
            return
        plan = judge(local.track if local else None, header, records["seq"])
        wanted: Span | None
        if local is None or plan.replace:  # (judge replaces whenever there is no local ring)
            local = self._replace(name, header)
            if local is None:
                return
            plan = judge(local.track, header, records["seq"])
            wanted = history(header.first, header.identity.capacity)
        else:
            if plan.new_epoch:
                local.new_epoch(header.epoch)
            wanted = reachable(plan.missing, header.identity.capacity) if plan.missing else None
        local.upstream = max(local.upstream, header.end)
        if allow_repair and self.config.jetstream and wanted and wanted[0] < wanted[1]:
            local.queue = [(msg, False)] if msg is not None else []
            task = asyncio.get_running_loop().create_task(self._repair(local, wanted))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        self._write(local, header, records, plan)

    def _write(self, local: LocalRing, header: BatchHeader, records: np.ndarray, plan: Plan) -> None:
        fresh = records[plan.keep :]
        holes = ((plan.missing,) if plan.missing else ()) + plan.holes
        now = time.time_ns()
        out = compose(fresh, holes, header.identity.record_type, local.last, now, local.chain)
        local.write(out)
        local.track = Track(header.identity, header.epoch, plan.end)
        figures = local.figures
        if holes:
            missed = sum(end - first for first, end in holes)
            figures.lost += missed
            figures.gaps += len(holes)
            if plan.missing:
                figures.lost_in_transit += plan.missing[1] - plan.missing[0]
            log.warning(
                "ring %s: seqs %s missing%s: GAP written",
                local.name,
                ", ".join(f"{a}..{b - 1}" for a, b in holes),
                " (lost on the way)" if plan.missing else " (lost at the mirror)",
            )
        self._carried(local, fresh, plan.end, now)

    @staticmethod
    def _carried(local: LocalRing, records: np.ndarray, end: int, now: int | None = None) -> None:
        figures = local.figures
        figures.carried(len(records), records.nbytes, records["ts_publish"], now or time.time_ns())
        figures.epoch, figures.position = local.track.epoch, end
        figures.lag_seq = local.upstream - end

    def _replace(self, name: str, header: BatchHeader) -> LocalRing | None:
        old = self.rings.pop(name, None)
        if old is not None:
            log.warning("ring %s: the source ring is a new incarnation; replacing the local ring", name)
            old.close()
        identity = header.identity
        figures = self.status.ring(name)
        try:
            owner = create_ring(name, identity.record_type, identity.capacity, instance=self.config.instance)
        except RingError as exc:
            self.refused[name] = str(exc)
            figures.state, figures.problem = "refused", str(exc)
            log.error("ring %s: cannot create the local ring: %s", name, exc)
            return None
        writer = RingWriter.attach(name, identity.record_type, instance=self.config.instance)
        local = LocalRing(name, owner, writer, Track(identity, header.epoch, None), figures)
        figures.state, figures.problem = "live", ""
        self.rings[name] = local
        log.info("ring %s: local copy created (%s x %d)", name, identity.record_type, identity.capacity)
        return local

    async def _repair(self, local: LocalRing, span: Span) -> None:
        """Fill `span` from the stream, then let the ring's waiting messages through."""
        stored: list[tuple[BatchHeader, bytes]] = []
        local.figures.state = "repairing"
        try:
            ring = StreamRing(self.nc, self.subjects.stream, self.subjects.ring(local.name))
            stored = await asyncio.wait_for(
                ring.batches(local.track.identity, span, REPAIR_LIMIT), self.config.repair_timeout_s
            )
        except Exception as exc:  # no stream, a timeout, the server away: what is missing becomes a GAP
            log.warning(
                "ring %s: no repair of seqs %d..%d from JetStream: %r", local.name, span[0], span[1] - 1, exc
            )
        before = local.figures.records
        for header, data in stored:
            try:
                records = decode_records(header, data)
            except BadBatch as exc:
                self._bad(local.name, exc)
                continue
            if self.rings.get(local.name) is not local:
                break
            self._apply_stored(local, header, records, span)
        local.figures.repaired += local.figures.records - before
        local.figures.state = "live"
        queue, local.queue = local.queue or [], None
        self._release(local.name, queue)

    def _apply_stored(self, local: LocalRing, header: BatchHeader, records: np.ndarray, span: Span) -> None:
        seqs = records["seq"]
        keep = records[seqs < span[1]]
        end = min(header.end, span[1])
        clipped = BatchHeader(header.identity, local.track.epoch, header.first, end)
        self._apply(local.name, clipped, keep, allow_repair=False)

    def _release(self, name: str, queue: list[tuple[Any, bool]]) -> None:
        for i, (msg, allow_repair) in enumerate(queue):
            local = self.rings.get(name)
            if local is not None and local.queue is not None:
                local.queue.extend(queue[i:])
                return
            self._take(name, msg, allow_repair)

    # --- the loop --------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                write_status(self.status)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), STATUS_S)
        finally:
            await self.close()

    async def close(self) -> None:
        self.status.running = False
        for task in list(self._tasks):
            task.cancel()
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.close()
        for local in self.rings.values():
            local.figures.state = "closed"
            local.close()
        self.rings.clear()
        self.status.connected = False
        write_status(self.status)
