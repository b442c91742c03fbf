"""The strategy processes: they receive book updates and note, for each, when they had it.

Each runs in its own process. Its hot path does only what a strategy must (get the update in a usable
form: a numpy record from the ring, a decoded dict from ZMQ), reads the clock, and appends one tuple to
a list; the columns (channel, change_id, receive ns, GAP flag; for rings also the worker's ts_recv and
ts_publish, which split the feeder's latency into stages) are built after it is told to stop, and saved
to an `.npz` file. Progress goes through shared counters the parent polls (`Shared`): updates so far
and channels seen, so the parent waits for readiness and for the drain without sleeping blindly.

- `ring_consumer`: a RingReader per book ring (per-instrument or chain rings), polled in turn; an empty
  sweep yields the CPU. A record's channel is its instrument_id's (`channel_of`): a chain ring carries
  many channels.
- `zmq_consumer`: a pyzmq SUB socket, bound before cryptofeed's PUB connects; the change_id comes
  from the `sequence_number` field the benchmark's backend adds (cryptofeed's delta dicts leave it out).
"""

from __future__ import annotations

import ctypes
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

STOP_POLL_SWEEPS = 1024  # empty sweeps between looks at the stop flag and the parent


@dataclass
class Shared:
    """Counters the parent and one consumer share (multiprocessing RawValues: no locks, one writer)."""

    updates: Any  # ctypes.c_uint64
    channels_seen: Any  # ctypes.c_uint64
    stop: Any  # ctypes.c_bool
    port: Any  # ctypes.c_int: the ZMQ consumer's bound port
    parent_pid: int

    @classmethod
    def make(cls, ctx: Any) -> Shared:
        return cls(
            ctx.RawValue(ctypes.c_uint64, 0),
            ctx.RawValue(ctypes.c_uint64, 0),
            ctx.RawValue(ctypes.c_bool, False),
            ctx.RawValue(ctypes.c_int, 0),
            os.getpid(),
        )

    def stopping(self) -> bool:
        """Told to stop, or the parent is gone (an interrupted benchmark leaves no consumer spinning)."""
        return bool(self.stop.value) or os.getppid() != self.parent_pid


def pin(cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def ring_consumer(
    rings: list[str], channel_of: dict[int, int], instance: str, out: str, shared: Shared, cpu: int | None
) -> None:
    """Read every ring from its oldest record until told to stop; save what arrived."""
    from feeder import GAP, RingReader

    pin(cpu)
    readers = [RingReader(name, instance=instance, start="oldest") for name in rings]
    lookup = np.full(max(channel_of) + 1, -1, np.int32)
    lookup[list(channel_of)] = list(channel_of.values())
    batches: list[tuple[int, np.ndarray]] = []
    append, now_ns, updates = batches.append, time.time_ns, shared.updates
    seen = np.zeros(len(channel_of), bool)
    count = idle = 0
    try:
        while True:
            got = False
            for reader in readers:
                records = reader.read()
                if len(records):
                    append((now_ns(), records))
                    count += len(records)
                    updates.value = count
                    got = True
                    if shared.channels_seen.value < len(seen):
                        seen[lookup[records["instrument_id"]]] = True
                        shared.channels_seen.value = int(np.count_nonzero(seen))
            if got:
                idle = 0
                continue
            idle += 1
            if idle >= STOP_POLL_SWEEPS:
                idle = 0
                if shared.stopping():
                    break
            os.sched_yield()
    finally:
        lost = sum(r.lost for r in readers)
        for reader in readers:
            reader.close()
    records = np.concatenate([b[1] for b in batches]) if batches else np.empty(0, readers[0].dtype)
    sizes = [len(b[1]) for b in batches]
    np.savez(
        out,
        chan=lookup[records["instrument_id"]],
        recv=np.repeat(np.array([b[0] for b in batches], np.int64), sizes),
        cid=records["change_id"].astype(np.int64),
        flag=(records["flags"] & GAP) != 0,
        ts_recv=records["ts_recv"],
        ts_publish=records["ts_publish"],
        reader_lost=np.int64(lost),
        channels=np.array(rings),
    )


def zmq_consumer(out: str, shared: Shared, cpu: int | None) -> None:
    """Subscribe to everything cryptofeed's ZMQ backend publishes; save what arrived."""
    import orjson
    import zmq

    pin(cpu)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    shared.port.value = sock.bind_to_random_port("tcp://127.0.0.1")
    got: list[tuple[str, int, int]] = []
    append, now_ns, loads, updates = got.append, time.time_ns, orjson.loads, shared.updates
    symbols: set[str] = set()
    try:
        while True:
            if not sock.poll(50):
                if shared.stopping():
                    break
                continue
            while True:
                try:
                    message = sock.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                data = loads(message.partition(b" ")[2])
                append((data["symbol"], data["sequence_number"], now_ns()))
                updates.value = len(got)
                if data["symbol"] not in symbols:
                    symbols.add(data["symbol"])
                    shared.channels_seen.value = len(symbols)
    finally:
        sock.close(linger=0)
        ctx.term()
    names = sorted(symbols)
    index = {name: i for i, name in enumerate(names)}
    np.savez(
        out,
        chan=np.array([index[g[0]] for g in got], np.int32),
        cid=np.array([g[1] for g in got], np.int64),
        recv=np.array([g[2] for g in got], np.int64),
        flag=np.zeros(
            len(got), np.bool_
        ),  # cryptofeed has no GAP flag: after a sequence break it resubscribes
        reader_lost=np.int64(0),
        channels=np.array(names, dtype=str),
    )
