"""A soak consumer: reads every book ring it is given and logs an observation per record read.

    python -m soak.consumer --instance I --rings book.BTC,book.ETH --log obs.bin --summary c0.json \
        [--trade-rings trades.BTC,trades.ETH --trade-log trades.bin]

Rules it keeps:
- Only the public API (`feeder.RingReader`); every ring is read from its oldest retained record, so
  a consumer that attaches after the first publish still sees the first SNAPSHOT.
- It polls its rings in turn and backs off (20 us doubling to 250 us) only when all were empty, so two
  CPUs are not eaten by spinning consumers; the read time it logs is taken right after each read.
- It stops when every ring is closed and drained (the feeder shut down), on SIGTERM, or when its
  parent is gone; then it flushes its log and writes a summary with the readers' counters.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

from feeder import RingNotFound, RingReader
from soak.observations import ObservationLog, TradeLog, write_summary

FIRST_PAUSE_S = 20e-6
LONGEST_PAUSE_S = 250e-6
FLUSH_EVERY_S = 0.5
ATTACH_TIMEOUT_S = 60.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m soak.consumer", description=__doc__.splitlines()[0])
    p.add_argument("--instance", required=True)
    p.add_argument("--rings", required=True, help="comma-separated book ring names")
    p.add_argument("--log", required=True, help="observation log to append to")
    p.add_argument("--summary", required=True, help="JSON summary written at exit")
    p.add_argument("--trade-rings", default="", help="comma-separated trade ring names, logged apart")
    p.add_argument("--trade-log", default=None, help="trade observation log (with --trade-rings)")
    return p.parse_args(argv)


def attach(names: list[str], instance: str) -> list[RingReader]:
    """Readers on every ring, waiting for rings the feeder has not created yet."""
    deadline = time.monotonic() + ATTACH_TIMEOUT_S
    readers: list[RingReader] = []
    for name in names:
        while True:
            try:
                readers.append(RingReader(name, instance=instance, start="oldest"))
                break
            except RingNotFound:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    return readers


class Consumer:
    def __init__(
        self,
        readers: list[RingReader],
        log: ObservationLog,
        trade_readers: list[RingReader] | None = None,
        trade_log: TradeLog | None = None,
    ):
        self.readers, self.log = readers, log
        self.trade_readers, self.trade_log = trade_readers or [], trade_log
        self.stopping = False
        self.parent = os.getppid()
        self.exit_reason = ""

    def read_all(self) -> int:
        got = 0
        add = self.log.add
        for i, reader in enumerate(self.readers):
            records = reader.read()
            if len(records):
                add(i, records, time.time_ns())
                got += len(records)
        for i, reader in enumerate(self.trade_readers):
            records = reader.read()
            if len(records) and self.trade_log is not None:
                self.trade_log.add(i, records, time.time_ns())
                got += len(records)
        return got

    def run(self) -> None:
        pause = FIRST_PAUSE_S
        next_flush = time.monotonic() + FLUSH_EVERY_S
        while True:
            closed = all(r.ring_closed for r in self.readers + self.trade_readers)
            if self.read_all():
                pause = FIRST_PAUSE_S
            elif self.done(closed):
                return
            else:
                time.sleep(pause)
                pause = min(pause * 2, LONGEST_PAUSE_S)
            if time.monotonic() >= next_flush:
                self.flush()
                next_flush = time.monotonic() + FLUSH_EVERY_S

    def flush(self) -> None:
        self.log.flush()
        if self.trade_log is not None:
            self.trade_log.flush()

    def done(self, closed: bool) -> bool:
        """Nothing was left to read: is it time to stop?"""
        if closed:
            self.exit_reason = "rings closed"
        elif self.stopping:
            self.exit_reason = "SIGTERM"
        elif os.getppid() != self.parent:
            self.exit_reason = "parent gone"
        return bool(self.exit_reason)

    def summary(self) -> dict:
        return {
            "pid": os.getpid(),
            "exit": self.exit_reason,
            "rings": {
                r.name: {
                    "records_read": r.records_read,
                    "lost": r.lost,
                    "epoch_changes": r.epoch_changes,
                    "start_seq": r.start_seq,
                    "next_seq": r.next_seq,
                    "write_seq": r.write_seq,
                }
                for r in self.readers + self.trade_readers
            },
        }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    readers = attach([r for r in args.rings.split(",") if r], args.instance)
    trade_readers = attach([r for r in args.trade_rings.split(",") if r], args.instance)
    with open(args.log, "ab") as f, open(args.trade_log or os.devnull, "ab") as tf:
        consumer = Consumer(readers, ObservationLog(f), trade_readers, TradeLog(tf))

        def on_term(signum: int, frame: object) -> None:
            consumer.stopping = True

        signal.signal(signal.SIGTERM, on_term)
        try:
            consumer.run()
        finally:
            consumer.flush()
            write_summary(args.summary, consumer.summary())
            for reader in readers + trade_readers:
                reader.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
