"""The strategy processes: they receive book updates and note, for each, when they had it.

Each runs in its own process and writes what it got to an `.npz` file when told to stop: channel
index, change_id, receive time (wall clock ns, taken once the update is usable: a numpy record from
the ring, a decoded dict from ZMQ) and a flag. Progress goes through shared counters the parent
polls (`Shared`): updates so far and channels seen, so the parent can wait for readiness and drain
without sleeping blindly.

- `ring_consumer`: RingReader on every book ring, polled in turn; an empty sweep yields the CPU
  (the consumer shares its CPU with the simulator). The flag is the record's GAP bit.
- `zmq_consumer`: a pyzmq SUB socket bound before cryptofeed's PUB connects; the change_id comes from
  the `sequence_number` field the benchmark's backend adds (cryptofeed's delta dicts leave it out).
"""

from __future__ import annotations

import ctypes
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

STOP_POLL_SWEEPS = 1024  # empty sweeps between looks at the stop flag


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


class Store:
    """Growable columns: channel, change_id, receive ns, flag; for rings also the worker's receive and
    publish times (ts_recv, ts_publish), which split the feeder's latency into stages."""

    COLUMNS = (("chan", np.int32), ("cid", np.int64), ("recv", np.int64), ("flag", np.bool_))
    STAGES = (("ts_recv", np.int64), ("ts_publish", np.int64))

    def __init__(self, expected: int, stages: bool = False):
        n = max(1024, expected)
        self.columns = self.COLUMNS + (self.STAGES if stages else ())
        for name, dtype in self.columns:
            setattr(self, name, np.empty(n, dtype))
        self.n = 0

    def reserve(self, extra: int) -> None:
        need = self.n + extra
        if need > self.chan.size:
            size = max(need, 2 * self.chan.size)
            for name, _ in self.columns:
                setattr(self, name, np.resize(getattr(self, name), size))

    def save(self, path: str, **extra: Any) -> None:
        np.savez(path, **{name: getattr(self, name)[: self.n] for name, _ in self.columns}, **extra)


def pin(cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def ring_consumer(
    rings: list[str], instance: str, out: str, shared: Shared, expected: int, cpu: int | None
) -> None:
    """Read every ring from its oldest record until told to stop; save what arrived."""
    from feeder.ring import GAP, RingReader

    pin(cpu)
    readers = [RingReader(name, instance=instance, start="oldest") for name in rings]
    store = Store(expected, stages=True)
    seen = [False] * len(readers)
    idle = 0
    try:
        while True:
            got = 0
            for i, reader in enumerate(readers):
                records = reader.read()
                n = len(records)
                if not n:
                    continue
                now = time.time_ns()
                store.reserve(n)
                k = store.n
                store.chan[k : k + n] = i
                store.cid[k : k + n] = records["change_id"]
                store.recv[k : k + n] = now
                store.flag[k : k + n] = (records["flags"] & GAP) != 0
                store.ts_recv[k : k + n] = records["ts_recv"]
                store.ts_publish[k : k + n] = records["ts_publish"]
                store.n = k + n
                got += n
                if not seen[i]:
                    seen[i] = True
                    shared.channels_seen.value += 1
            if got:
                shared.updates.value = store.n
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
        store.save(out, reader_lost=np.int64(lost), channels=np.array(rings))


def zmq_consumer(out: str, shared: Shared, expected: int, cpu: int | None) -> None:
    """Subscribe to everything cryptofeed's ZMQ backend publishes; save what arrived."""
    import orjson
    import zmq

    pin(cpu)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    shared.port.value = sock.bind_to_random_port("tcp://127.0.0.1")
    symbols: dict[str, int] = {}
    store = Store(expected)
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
                data = orjson.loads(message.partition(b" ")[2])
                now = time.time_ns()
                chan = symbols.get(data["symbol"])
                if chan is None:
                    chan = symbols[data["symbol"]] = len(symbols)
                    shared.channels_seen.value = len(symbols)
                store.reserve(1)
                k = store.n
                store.chan[k] = chan
                store.cid[k] = data["sequence_number"]
                store.recv[k] = now
                store.flag[k] = False  # cryptofeed has no GAP flag: after a sequence break it resubscribes
                store.n = k + 1
                shared.updates.value = store.n
    finally:
        sock.close(linger=0)
        ctx.term()
        store.save(out, reader_lost=np.int64(0), channels=np.array(list(symbols), dtype=str))
