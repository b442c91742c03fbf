"""The inventory segment: which instruments a feeder instance serves, with their metadata.

One small shared-memory segment per instance (`/dev/shm/feeder.<instance>.inventory`, layout in
schemas/inventory.json): a 512-byte header, then fixed-size entries. The supervisor owns and writes it
(`InventoryWriter`); anyone reads it (`InventoryReader`) to resolve the `instrument_id` of chain-ring
records and to learn about listings and expiries without polling the file system. Rules it keeps:
- A seqlock: `generation` is odd while the writer changes anything; a reader copies the entries
  between two equal even loads of it, so it never sees half a change. The writer never waits.
- Entries are appended when an instrument is listed and changed in place when it ends (state 2,
  `ended_ns`); a full table drops ended entries (compaction), so readers key by instrument_id.
- Segments are built, linked and locked as rings are (`feeder.ring.segment`): created fully formed,
  mode 0600, the owner's kernel lock on byte 0; a reader maps read-only and keeps no descriptor.
"""

from __future__ import annotations

import json
import mmap
import os
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from feeder.errors import FingerprintMismatch, NotARing, RingError, RingExists
from feeder.exchanges.deribit.instruments import InstrumentInfo
from feeder.ring import segment as seg
from feeder.ring.names import SEGMENT_PREFIX, SHM_DIR, instance_name
from feeder.ring.schema import compute_fingerprint, dtype_from_fields, schema_dir

LIVE, ENDED = 1, 2
KIND_CODES = {"option": 1, "future": 2, "perpetual": 3, "spot": 4}
KIND_NAMES = {code: kind for kind, code in KIND_CODES.items()}
OPTION_CODES = {"": 0, "call": 1, "put": 2}
STREAM_BITS = {"book": 1, "trades": 2, "ticker": 4, "markprice": 8}
SEGMENT = "inventory"


@dataclass(frozen=True)
class InventoryLayout:
    header: np.dtype
    entry: np.dtype
    header_size: int
    magic: bytes
    layout_version: int
    fingerprint: int


@cache
def layout() -> InventoryLayout:
    doc = json.loads((schema_dir() / "inventory.json").read_text())
    size, version = int(doc["size"]), int(doc["layout_version"])
    computed = compute_fingerprint("inventory", size, doc["fields"], version)
    if computed != int(doc["fingerprint"], 16):
        raise RingError(
            f"inventory.json declares fingerprint {doc['fingerprint']}, its layout hashes to {computed:#018x}"
        )
    return InventoryLayout(
        header=dtype_from_fields(doc["header_fields"], int(doc["header_size"]), "inventory.json header"),
        entry=dtype_from_fields(doc["fields"], size, "inventory.json"),
        header_size=int(doc["header_size"]),
        magic=doc["magic"].encode(),
        layout_version=version,
        fingerprint=computed,
    )


def inventory_path(instance: str | None = None) -> Path:
    return Path(SHM_DIR) / f"{SEGMENT_PREFIX}{instance_name(instance)}.{SEGMENT}"


def entry_for(info: InstrumentInfo, ring_symbol: str, streams: int, now_ns: int) -> np.ndarray:
    """One live entry for an instrument."""
    e = np.zeros(1, layout().entry)
    e["instrument_id"], e["state"], e["kind"] = info.instrument_id, LIVE, KIND_CODES[info.kind]
    e["option_type"], e["streams"] = OPTION_CODES[info.option_type], streams
    e["expiration_ms"], e["strike"], e["tick_size"] = info.expiration_ms, info.strike, info.tick_size
    e["tick_step_above"], e["tick_step_size"] = info.tick_step_above, info.tick_step_size
    e["contract_size"], e["min_trade_amount"], e["listed_ns"] = (
        info.contract_size,
        info.min_trade_amount,
        now_ns,
    )
    for name in ("name", "base_currency", "quote_currency", "settlement_currency", "price_index"):
        e[name] = getattr(info, name).encode()[: e.dtype[name].itemsize]
    e["ring_symbol"] = ring_symbol.encode()
    return e


class InventoryWriter:
    """The supervisor's side: create, add, end, close (which removes the segment)."""

    def __init__(self, instance: str | None = None, capacity: int = 4096):
        self.instance = instance_name(instance)
        self.path = inventory_path(self.instance)
        lay = layout()
        self.capacity = capacity
        self._fd, mm = self._create(lay, capacity)
        self._mm: mmap.mmap | None = mm  # None once closed
        self._head = np.ndarray((), lay.header, mm, 0)
        self._entries = np.ndarray((capacity,), lay.entry, mm, lay.header_size)
        self._index: dict[int, int] = {}  # instrument_id -> entry

    def _create(self, lay: InventoryLayout, capacity: int) -> tuple[int, mmap.mmap]:
        size = lay.header_size + capacity * lay.entry.itemsize

        def init(mm: mmap.mmap) -> None:
            head = np.ndarray((), lay.header, mm, 0)
            head["layout_version"], head["header_size"], head["capacity"] = (
                lay.layout_version,
                lay.header_size,
                capacity,
            )
            head["entry_size"], head["fingerprint"] = lay.entry.itemsize, lay.fingerprint
            head["instance"], head["created_ns"] = self.instance.encode(), time.time_ns()
            head["owner_pid"] = os.getpid()
            head["magic"] = lay.magic
            del head

        fd, mm, tmp = seg.build(self.path, size, init)
        try:
            self._check_no_live_owner()
            os.replace(tmp, self.path)  # a stale inventory (its owner died) is replaced whole
        except BaseException:
            mm.close()
            seg.release_fd(fd)
            tmp.unlink(missing_ok=True)
            raise
        return fd, mm

    def _check_no_live_owner(self) -> None:
        try:
            old = seg.open_existing(self.path, writable=False)
        except FileNotFoundError:
            return
        try:
            if seg.is_locked(old, seg.OWNER_LOCK):
                raise RingExists(
                    f"the inventory of instance {self.instance!r} is owned by a live feeder ({self.path}); "
                    f"stop it first or use another instance"
                )
        finally:
            os.close(old)

    # --- changes (each under the seqlock) ----------------------------------------------------------

    def _begin(self) -> None:
        self._head["generation"] += 1

    def _commit(self) -> None:
        head = self._head
        head["updated_ns"] = time.time_ns()
        head["live"] = int(np.count_nonzero(self._entries["state"][: int(head["count"])] == LIVE))
        head["generation"] += 1

    def add(self, entries: list[np.ndarray]) -> list[str]:
        """Add live entries (new instruments, or ones listed again); returns the names it had no room for."""
        self._begin()
        refused = []
        try:
            for e in entries:
                iid = int(e["instrument_id"][0])
                slot = self._index.get(iid)
                if slot is None:
                    slot = self._free_slot()
                if slot is None:
                    refused.append(e["name"][0].decode())
                    continue
                self._entries[slot] = e[0]
                self._index[iid] = slot
        finally:
            self._commit()
        return refused

    def end(self, instrument_ids: list[int], now_ns: int) -> None:
        """Mark instruments ended (their FINAL records are out)."""
        self._begin()
        try:
            for iid in instrument_ids:
                slot = self._index.get(iid)
                if slot is not None:
                    self._entries[slot]["state"] = ENDED
                    self._entries[slot]["ended_ns"] = now_ns
        finally:
            self._commit()

    def _free_slot(self) -> int | None:
        count = int(self._head["count"])
        if count == self.capacity:
            count = self._compact()
            if count == self.capacity:
                return None
        self._head["count"] = count + 1
        return count

    def _compact(self) -> int:
        """Drop ended entries (inside an open change); returns the new count."""
        used = self._entries[: int(self._head["count"])]
        kept = used[used["state"] == LIVE].copy()
        self._entries[: len(kept)] = kept
        self._entries[len(kept) :] = 0
        self._index = {int(iid): n for n, iid in enumerate(kept["instrument_id"])}
        self._head["count"] = len(kept)
        return len(kept)

    def close(self) -> None:
        """Mark the inventory closed and remove it."""
        if self._mm is None:
            return
        self._head["closed"] = 1
        if seg.same_file(self._fd, self.path):
            self.path.unlink(missing_ok=True)
        del self._head, self._entries
        self._mm.close()
        seg.release_fd(self._fd)
        self._mm = None


class InventoryReader:
    """A read-only view of an instance's inventory: `generation`, `entries()`, `closed`."""

    def __init__(self, instance: str | None = None):
        self.instance = instance_name(instance)
        self.path = inventory_path(self.instance)
        try:
            fd = seg.open_existing(self.path, writable=False)
        except FileNotFoundError:
            raise seg.not_found("inventory", self.instance, self.path) from None
        try:
            size = os.fstat(fd).st_size
            self._mm = seg.map_fd(fd, size, writable=False)
        finally:
            os.close(fd)
        lay = layout()
        head = np.frombuffer(self._mm, lay.header, 1, 0)[0] if size >= lay.header_size else None
        if head is None or bytes(head["magic"]) != lay.magic:
            self._mm.close()
            raise NotARing(f"{self.path} is not a feeder inventory")
        if int(head["fingerprint"]) != lay.fingerprint:
            self._mm.close()
            raise FingerprintMismatch(
                f"{self.path}: inventory layout {int(head['fingerprint']):#018x}, this reader's "
                f"schemas/inventory.json has {lay.fingerprint:#018x}: use the same feeder version"
            )
        self.capacity = int(head["capacity"])
        self._words = memoryview(self._mm)[: lay.header_size].cast("Q")
        self._u32 = memoryview(self._mm)[: lay.header_size].cast("I")
        self._gen, self._count, self._closed = 128 // 8, 136 // 4, 80 // 4
        self._entries = np.frombuffer(self._mm, lay.entry, self.capacity, lay.header_size)

    @property
    def generation(self) -> int:
        return self._words[self._gen]

    @property
    def closed(self) -> bool:
        return bool(self._u32[self._closed])

    def entries(self) -> tuple[int, np.ndarray]:
        """(generation, a consistent copy of every entry in use)."""
        while True:
            g1 = self._words[self._gen]
            if g1 & 1:
                time.sleep(0)
                continue
            n = self._u32[self._count]
            copy = self._entries[:n].copy()
            if self._words[self._gen] == g1:
                return g1, copy

    def close(self) -> None:
        if self._mm.closed:
            return
        self._words.release()
        self._u32.release()
        del self._entries
        self._mm.close()

    def __enter__(self) -> InventoryReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def text(value: bytes) -> str:
    return value.rstrip(b"\0").decode("ascii", "replace")
