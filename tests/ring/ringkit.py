"""Helpers for the ring tests: self-checking records, the stress-test processes, raw segment access.

Self-checking book records derive every field from their sequence number, so any record that mixes
two writes (a torn read) fails `torn_count`. Child processes import this module as `ring.ringkit`
(the `procs` fixture puts tests/ on their PYTHONPATH).
"""

from __future__ import annotations

import json
import mmap
import os
import random
import select
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import psutil

from feeder.ring import RingReader, RingWriter, futex
from feeder.ring.header import HEADER_SIZE, WAIT_PAGE, HeaderWords
from feeder.ring.schema import record_schema

TESTS_DIR = Path(__file__).resolve().parent.parent
DEADLINE = 30.0
BOOK = record_schema("book").dtype
LEVELS = np.arange(10, dtype=np.float64)


def selfcheck_records(first: int, n: int) -> np.ndarray:
    """`n` book records for seqs first.. whose fields are all functions of seq."""
    return expected_records(np.arange(first, first + n, dtype=np.uint64))


def expected_records(seq: np.ndarray) -> np.ndarray:
    """The self-checking record of each seq."""
    s = seq.astype(np.int64)
    out = np.zeros(len(seq), BOOK)
    out["seq"] = seq
    out["flags"] = (s % 7).astype(np.uint32)
    out["ts_exchange"] = s * 3 + 1
    out["ts_recv"] = s * 5 + 2
    out["change_id"] = s * 7 + 3
    out["prev_change_id"] = s * 11 + 4
    out["bid_count"] = (s % 11).astype(np.uint16)
    out["ask_count"] = ((s * 3) % 11).astype(np.uint16)
    f = s.astype(np.float64)[:, None]
    out["bid_px"] = f + LEVELS * 0.5
    out["bid_sz"] = f * 2 + LEVELS
    out["ask_px"] = f + 1000 + LEVELS
    out["ask_sz"] = f * 3 + LEVELS
    return out


def torn_count(records: np.ndarray) -> int:
    """How many records have a field that does not match their seq (ts_publish is the writer's own)."""
    if len(records) == 0:
        return 0
    expected = expected_records(records["seq"])
    bad = records["ts_publish"] <= 0
    for name in BOOK.names:
        if name != "ts_publish":
            bad |= (records[name] != expected[name]).reshape(len(records), -1).any(axis=1)
    return int(bad.sum())


def stress_writer(ring: str, total: int, seed: int) -> None:
    """Attach as writer and publish `total` self-checking records at full speed: singly and in batches,
    copied in (`publish`, `publish_batch`) and written in place (`claim`, `commit`)."""
    rng = random.Random(seed)
    with RingWriter.attach(ring, "book") as writer:
        seq = writer.write_seq
        end = seq + total
        while seq < end:
            n = min(rng.choice((1, 1, 1, 3, 17, 64)), end - seq)
            records = selfcheck_records(seq, n)
            if rng.random() < 0.5:
                write_in_place(writer, records)
            elif n == 1:
                writer.publish(records)
            else:
                writer.publish_batch(records)
            seq += n


def write_in_place(writer: RingWriter, records: np.ndarray) -> int:
    """Publish `records` by writing them straight into their slots (one record: field by field, so that
    the slot spends longest half-written), then committing."""
    first = writer.claim(len(records))
    if len(records) == 1:
        slot = writer.records[first]
        for name in BOOK.names[1:]:
            slot[name] = records[0][name]
    else:
        writer.records[(first + np.arange(len(records))) & (writer.capacity - 1)] = records
    return writer.commit()


def stress_reader(ring: str, until: int, mode: str) -> None:
    """Read until seq `until`, check every record, print a JSON summary (fast, sleepy or slow)."""
    wait = {"sleepy": "spin_sleep", "blocking": "block"}.get(mode, "spin")
    torn = disorder = 0
    with RingReader(ring, start="oldest", wait=wait) as reader:
        start, last = reader.start_seq, -1
        print(json.dumps({"ready": True}), flush=True)
        while reader.next_seq < until:
            if not reader.wait(timeout=60):
                break
            records = reader.read(max_records=64 if mode == "slow" else None)
            torn += torn_count(records)
            seqs = records["seq"].astype(np.int64)
            disorder += int(np.count_nonzero(np.diff(seqs) <= 0)) + int(len(seqs) > 0 and seqs[0] <= last)
            if len(seqs):
                last = int(seqs[-1])
            if mode == "slow":
                time.sleep(0.002)  # a deliberately slow consumer, so the writer laps it
        summary = {
            "start": start, "next": reader.next_seq, "read": reader.records_read, "lost": reader.lost,
            "torn": torn, "disorder": disorder,
        }  # fmt: skip
    print(json.dumps(summary), flush=True)


def futex_waiting_threads(pid: int) -> int:
    """How many threads of `pid` are asleep in FUTEX_WAIT_BITSET on a shared futex (op 9, as the ring's
    sleepers wait: no FUTEX_PRIVATE_FLAG, which the interpreter's own locks always use)."""
    count = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "syscall").read_text().split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if (
            len(fields) > 2
            and fields[0] == str(futex._SYS_FUTEX)
            and int(fields[2], 16) == futex.FUTEX_WAIT_BITSET
        ):
            count += 1
    return count


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


@contextmanager
def wait_words(path: Path):
    """The wait page of a segment, as a foreign process maps it: a 4-byte view (index with WAKEUPS, SLEEPERS)."""
    fd = os.open(path, os.O_RDWR)
    try:
        page = mmap.mmap(fd, mmap.PAGESIZE, offset=WAIT_PAGE)
    finally:
        os.close(fd)
    words = memoryview(page).cast("I")
    try:
        yield words
    finally:
        words.release()
        page.close()


def hold() -> None:
    """In a child: block until the test closes our stdin (the `procs` fixture does at the end)."""
    sys.stdin.read()


def read_line(proc: subprocess.Popen, timeout: float = DEADLINE) -> str:
    """The next line a child prints, waiting at most `timeout` seconds (stdout an unbuffered binary pipe)."""
    deadline = time.monotonic() + timeout
    line = bytearray()
    while not line.endswith(b"\n"):
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise AssertionError(
                f"pid {proc.pid} printed no whole line within {timeout:g} s: {bytes(line)!r}"
            )
        byte = os.read(proc.stdout.fileno(), 1)
        if not byte:
            raise AssertionError(f"pid {proc.pid} exited (code {proc.wait()}) without printing a line")
        line += byte
    return line.decode().strip()


@contextmanager
def raw_segment(path: Path):
    """Map a segment read-write the way a foreign (say, crashed C) process would: header words and slots."""
    fd = os.open(path, os.O_RDWR)
    try:
        mm = mmap.mmap(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)
    words = HeaderWords(mm)
    try:
        yield words, mm
    finally:
        words.release()
        mm.close()


def slot_offset(seq: int, capacity: int, record_size: int) -> int:
    return HEADER_SIZE + (seq & (capacity - 1)) * record_size


def group_gone(pgid: int) -> bool:
    """True when no process of the process group is left (a resource tracker included)."""
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(proc.info["pid"]) == pgid:
                return False
        except ProcessLookupError:
            continue
    return True
