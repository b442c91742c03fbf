"""Two feeder instances on one machine playing two hosts: a source ring writer, `feeder mirror`,
`feeder replicate`, a real nats-server, and the check that every seq on the replica is accounted for.

Child processes import this module as `bridge.bridgekit` (tests/ is on their PYTHONPATH).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from helpers import wait_until

from feeder import GAP, MARKER, SNAPSHOT, RingReader, RingWriter
from feeder.bridge.status import read_status
from feeder.errors import UsageError

TESTS_DIR = Path(__file__).resolve().parent.parent
CAPACITY = 1 << 15  # no ring wraps during a test: every seq ever written can be compared
SNAPSHOT_EVERY = 100


def book_record(dtype: np.dtype, n: int) -> np.ndarray:
    """The n-th book of the test source: every field a function of n; a SNAPSHOT every 100."""
    rec = np.zeros(1, dtype)
    rec["flags"] = SNAPSHOT if n % SNAPSHOT_EVERY == 0 else 0
    rec["change_id"], rec["prev_change_id"] = n + 1, n
    rec["ts_exchange"] = rec["ts_recv"] = time.time_ns()
    rec["bid_count"] = rec["ask_count"] = 10
    rec["bid_px"] = 100.0 - np.arange(10) - n % 7
    rec["ask_px"] = 101.0 + np.arange(10) + n % 5
    rec["bid_sz"] = rec["ask_sz"] = 1.0 + n % 3
    return rec


def writer_main(instance: str, rate: float, batch: int = 1, capacity: int = CAPACITY) -> None:
    """Write book.BTC and trades.BTC at `rate` records/s each, `batch` at a time, until SIGTERM (then
    remove both rings)."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    book = RingWriter.create("book.BTC", "book", capacity, instance=instance)
    trades = RingWriter.create("trades.BTC", "trade", capacity, instance=instance)
    try:
        began, n = time.monotonic(), 0
        while True:
            books = np.concatenate([book_record(book.dtype, n + i) for i in range(batch)])
            book.publish_batch(books)
            trade = np.zeros(batch, trades.dtype)
            trade["trade_seq"] = np.arange(n, n + batch)
            trade["price"], trade["amount"] = 100.0 + n % 9, 1.0
            trades.publish_batch(trade)
            n += batch
            delay = began + n / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    except KeyboardInterrupt:
        pass
    finally:
        book.close()
        trades.close()


class Proc:
    """A child process in its own process group, its output in a log file; killed whatever happens."""

    def __init__(self, argv: list[str], log: Path, env: dict | None = None):
        self.argv, self.log = argv, log
        self.env = {**os.environ, "PYTHONPATH": str(TESTS_DIR), **(env or {})}
        self.proc: subprocess.Popen | None = None

    def start(self) -> Proc:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; the exit code."""
        if self.proc is None:
            return 0
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None:
            self.signal(signal.SIGKILL)
            self.proc.wait(30)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class Host:
    """The processes of one test, cleaned up at the end: source writer, mirrors, replicas."""

    def __init__(self, tmp: Path, url: str, source: str, replica: str):
        self.tmp, self.url, self.source, self.replica = tmp, url, source, replica
        self.procs: list[Proc] = []

    def _proc(self, argv: list[str], name: str) -> Proc:
        proc = Proc(argv, self.tmp / f"{name}-{len(self.procs)}.log").start()
        self.procs.append(proc)
        return proc

    def writer(self, rate: float = 1000.0, batch: int = 1, capacity: int = CAPACITY) -> Proc:
        args = f"{self.source!r}, {rate}, {batch}, {capacity}"
        code = f"from bridge.bridgekit import writer_main; writer_main({args})"
        proc = self._proc([sys.executable, "-c", code], "writer")
        wait_until(
            lambda: _ring_exists(self.source, "trades.BTC") or not proc.alive(), what="the source rings"
        )
        assert proc.alive(), proc.output()
        return proc

    def mirror(self, *args: str) -> Proc:
        argv = ["mirror", "--nats", self.url, "--instance", self.source, "--heartbeat", "0.2", *args]
        return self._proc([sys.executable, "-m", "feeder", *argv], "mirror")

    def replicate(self, *args: str) -> Proc:
        argv = ["replicate", "--nats", self.url, "--instance", self.replica, "--source", self.source, *args]
        return self._proc([sys.executable, "-m", "feeder", *argv], "replica")

    def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.alive():
                try:
                    proc.stop(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
        for instance in (self.source, self.replica):
            for path in Path("/dev/shm").glob(f"feeder.{instance}.*"):
                path.unlink(missing_ok=True)

    def logs(self) -> str:
        return "\n".join(f"--- {p.log.name}\n{p.output()[-3000:]}" for p in self.procs)


def _ring_exists(instance: str, ring: str) -> bool:
    return Path(f"/dev/shm/feeder.{instance}.{ring}").exists()


def all_records(instance: str, ring: str) -> tuple[np.ndarray, int, int]:
    """Every retained record of a ring, its start seq and how many the read counted lost."""
    with RingReader(ring, instance=instance, start="oldest") as reader:
        start = reader.next_seq
        parts = []
        while True:
            got = reader.read()
            if not len(got):
                break
            parts.append(got)
        records = np.concatenate(parts) if parts else np.zeros(0, reader.dtype)
        return records, start, reader.lost


def write_seq(instance: str, ring: str) -> int:
    with RingReader(ring, instance=instance) as reader:
        return reader.write_seq


@dataclass
class Accounting:
    held: int  # seqs whose record is the source's, byte for byte
    gaps: int  # GAP/MARKER records the replica wrote for missing seqs
    missing: int  # seqs skipped (counted lost by readers)
    first: int
    end: int


def account(source: str, replica: str, ring: str, end: int | None = None) -> Accounting:
    """Check every seq of the replica ring against the source: identical byte for byte, or a gap record
    that ends a run of missing seqs (the seqs before it in the run skipped: readers count them lost).
    Fails naming the first seq that is neither."""
    src, src_start, _ = all_records(source, ring)
    dst, dst_start, _ = all_records(replica, ring)
    if end is not None:  # a live source: only the seqs both sides have reached
        dst = dst[dst["seq"] < end]
    else:
        assert src_start == 0, "the source ring wrapped: the test ran longer than it should"
    by_seq = {int(r["seq"]): r.tobytes() for r in src}
    held = gaps = 0
    previous = None
    for rec in dst:
        s = int(rec["seq"])
        skipped = previous is not None and s > previous + 1
        if by_seq.get(s) == rec.tobytes() and not skipped:
            held += 1
        else:
            flags = int(rec["flags"])
            where = f"{ring} seq {s} (after {previous})"
            assert flags & GAP, f"{where}: not the source's record and not a GAP record: {rec}"
            assert not flags & SNAPSHOT, f"{where}: a gap record must not be a SNAPSHOT"
            if ring.startswith("trades"):
                assert flags & MARKER and rec["price"] == 0, f"{where}: an event gap must carry no event"
            gaps += 1
        previous = s
    first = int(dst["seq"][0]) if len(dst) else dst_start
    last = previous + 1 if previous is not None else dst_start
    return Accounting(held, gaps, (last - first) - len(dst), first, last)


def role_figures(role: str, instance: str, ring: str) -> dict:
    """A ring's figures in the status file of the mirror or replica of an instance ({} before there is one)."""
    try:
        return read_status(role, instance)["rings"].get(ring, {})
    except UsageError:
        return {}


def replica_figures(instance: str, ring: str) -> dict:
    return role_figures("replica", instance, ring)


def caught_up(host: Host, ring: str, target: int) -> bool:
    """The replica has accounted for every seq the source had written when the wait began."""
    try:
        return write_seq(host.replica, ring) >= target
    except Exception:
        return False


def wait_caught_up(host: Host, ring: str = "book.BTC", timeout: float = 60.0) -> None:
    target = write_seq(host.source, ring)
    try:
        wait_until(
            lambda: caught_up(host, ring, target), timeout, f"the replica of {ring} to reach seq {target}"
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{host.logs()}") from None
