"""Benchmark: the shared-memory ring against multiprocessing.Queue, faster-fifo and pyzmq over ipc.

The same stream of 384-byte book records goes from one writer process to 1 or 4 reader processes
through each transport, in one run:

- throughput: records/s delivered to every reader when the writer sends as fast as it can, one
  record per message (and, 1 reader, batches of 100 per message);
- latency: at fixed rates (1k and 10k records/s), from just before the writer's send/publish to the
  moment the reader holds the record as a numpy record, p50/p99/p99.9; with the reader's CPU time
  per record (its process's CPU time from its first record to its last, divided by the records) and
  the writer's own time per send (so a ring reader that sleeps shows what waking it costs);
- publish cost: the writer's time per record at full speed, and the ring's publish measured alone,
  with the in-place API (claim/commit) and the ways an adapter can fill a book record;
- the futex wake-up floor: a bare FUTEX_WAKE in one process to FUTEX_WAIT's return in another, at
  the latency trials' rates, through the ring's own ctypes calls: what a sleeping reader waits at least.

Fan-out: the ring is broadcast; for multiprocessing.Queue and faster-fifo the writer puts to one queue
per reader; pyzmq uses PUB/SUB over an ipc:// socket. Readers receive numpy records: the ring returns
them (at most 1024 per read), the others get bytes and call np.frombuffer. Three ring readers: `ring`
spins with 1 reader and spins-then-sleeps with 4 (4 spinning readers would fight over one core),
`ring-block` sleeps in the kernel until the writer wakes it (wait="block"), `ring-async` awaits
`next_batch()` in a uvloop event loop; the others block in their receive call.
On a machine with 2 or more CPUs the writer is pinned to CPU 0 and every reader to CPU 1.

Usage: python scripts/bench_ipc.py [--quick] [--json] [--repeat K] [--trials TEXT] [--transports A,B]
                                  [--records N] [--rates R,R] [--seconds S]
Targets (issue 2): single publish <= 1 us median, batch <= 100 ns/record, ring p50 <= 10 us and
p99 <= 100 us at 10k/s with a spinning reader, throughput >= 3x and p50 <= 1/5 of the best alternative.
(issue 11): the same publish targets; a blocking reader's p50 wake-up <= 20 us and no CPU while idle;
the sleepers check <= 50 ns per publish.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import mmap
import multiprocessing as mp
import os
import statistics
import struct
import sys
import tempfile
import time
import uuid

import numpy as np

from feeder.exchanges.deribit.records import packer
from feeder.ring import RingReader, RingWriter, create_ring, futex
from feeder.ring.schema import record_schema

BOOK = record_schema("book").dtype
TS_RECV = BOOK.fields["ts_recv"][1]  # the writer's send timestamp travels in this field
BATCH = 100
READ_CHUNK = 1024  # most records a reader takes per call (ring read, faster-fifo get_many)
RING_CAPACITY = 1 << 16
END, PROBE = b"E", b"P"
TRANSPORTS = ("ring", "ring-block", "ring-async", "mp.Queue", "faster-fifo", "zmq-ipc")
CTX = mp.get_context("fork")


def _identity(x):
    return x


# --- transports: what the writer and each reader do ----------------------------------------------


class Ring:
    name = "ring"

    def __init__(self, readers: int):
        self.ring = f"book.BENCH{uuid.uuid4().hex[:8]}"
        self.owner = create_ring(self.ring, "book", RING_CAPACITY)
        self.wait = self.wait_for(readers)

    @staticmethod
    def wait_for(readers: int) -> str:
        return "spin" if readers == 1 else "spin_sleep"

    def sender(self):
        writer = RingWriter.attach(self.ring, "book")
        return writer.publish, writer.publish_batch, writer.close

    def receiver(self, index: int):
        reader = RingReader(self.ring, start="oldest", wait=self.wait)

        def receive():
            while True:
                records = reader.read(READ_CHUNK)
                if len(records):
                    return records
                if not reader.wait(timeout=30):
                    return None

        return receive, lambda: reader.lost

    def writer_done(self) -> None:
        self.owner.close()  # readers drain, then see the ring closed

    def close(self) -> None:
        self.owner.close()


def _records(message) -> np.ndarray:
    if isinstance(message, list):
        return np.frombuffer(b"".join(message), BOOK)
    return np.frombuffer(message, BOOK)


class MpQueue:
    name = "mp.Queue"

    def __init__(self, readers: int):
        self.queues = [CTX.Queue() for _ in range(readers)]

    def sender(self):
        queues = self.queues

        def send(record):
            raw = record.tobytes()
            for q in queues:
                q.put(raw)

        def send_batch(records):
            raws = [r.tobytes() for r in records]
            for q in queues:
                q.put(raws)

        def finish():
            for q in queues:
                q.put(END)
                q.close()
                q.join_thread()

        return send, send_batch, finish

    def receiver(self, index: int):
        q = self.queues[index]

        def receive():
            message = q.get(timeout=30)
            return None if message == END else _records(message)

        return receive, lambda: 0

    def writer_done(self) -> None:
        pass

    def close(self) -> None:
        for q in self.queues:
            q.close()


class FasterFifo:
    name = "faster-fifo"

    def __init__(self, readers: int):
        from faster_fifo import Queue

        self.queues = [Queue(max_size_bytes=64 << 20, dumps=_identity, loads=bytes) for _ in range(readers)]

    def sender(self):
        queues = self.queues

        def send(record):
            raw = record.tobytes()
            for q in queues:
                q.put(raw, timeout=30)

        def send_batch(records):
            raws = [r.tobytes() for r in records]
            for q in queues:
                q.put_many(raws, timeout=30)

        def finish():
            for q in queues:
                q.put(END, timeout=30)

        return send, send_batch, finish

    def receiver(self, index: int):
        q = self.queues[index]
        ended = []

        def receive():
            if ended:
                return None
            messages = q.get_many(timeout=30, max_messages_to_get=READ_CHUNK)
            if messages[-1] == END:
                ended.append(True)
                messages.pop()
            return _records(messages) if messages else None

        return receive, lambda: 0

    def writer_done(self) -> None:
        pass

    def close(self) -> None:
        for q in self.queues:
            q.close()


class ZmqIpc:
    name = "zmq-ipc"

    def __init__(self, readers: int):
        self.address = f"ipc://{tempfile.gettempdir()}/bench-ipc-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.synced = [CTX.Event() for _ in range(readers)]

    def sender(self):
        import zmq

        sock = zmq.Context().socket(zmq.PUB)
        sock.setsockopt(zmq.SNDHWM, 0)
        sock.bind(self.address)
        while not all(event.is_set() for event in self.synced):  # PUB/SUB's slow joiner: probe
            sock.send(PROBE)
            time.sleep(0.001)

        def send_batch(records):
            sock.send_multipart([r.tobytes() for r in records])

        def finish():
            sock.send(END)
            sock.close(linger=10_000)

        return (lambda record: sock.send(record.tobytes())), send_batch, finish

    def receiver(self, index: int):
        import zmq

        sock = zmq.Context().socket(zmq.SUB)
        sock.setsockopt(zmq.RCVHWM, 0)
        sock.setsockopt(zmq.SUBSCRIBE, b"")
        sock.setsockopt(zmq.RCVTIMEO, 30_000)
        sock.connect(self.address)
        synced = self.synced[index]

        def receive():
            while True:
                frames = sock.recv_multipart()
                if frames[0] == PROBE:
                    synced.set()
                elif frames[0] == END:
                    return None
                else:
                    return _records(frames if len(frames) > 1 else frames[0])

        return receive, lambda: 0

    def writer_done(self) -> None:
        pass

    def close(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.address[len("ipc://") :])


class RingBlock(Ring):
    name = "ring-block"

    @staticmethod
    def wait_for(readers: int) -> str:
        return "block"


class RingAsync(Ring):
    """`await reader.next_batch()` in a uvloop loop: the reader's coroutine side."""

    name = "ring-async"

    def areceiver(self, index: int):
        reader = RingReader(self.ring, start="oldest")

        async def receive():
            records = await reader.next_batch(READ_CHUNK, timeout=30)
            return records if len(records) else None

        return receive, lambda: reader.lost


KINDS = {cls.name: cls for cls in (Ring, RingBlock, RingAsync, MpQueue, FasterFifo, ZmqIpc)}


# --- the processes -------------------------------------------------------------------------------


def _pin(cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def _stamp_view(record: np.ndarray) -> memoryview:
    return memoryview(record.view(np.uint8))


def _writer(transport, workload: dict, cpu: int | None, results) -> None:
    _pin(cpu)
    send, send_batch, finish = transport.sender()
    record = np.zeros(1, BOOK)
    record["bid_px"] = 50_000.0
    stamp, pack = _stamp_view(record), struct.Struct("<q").pack_into
    costs = np.zeros(workload.get("rate", 0) * workload.get("seconds", 0), np.int64)
    start = time.time_ns()
    if workload["kind"] == "throughput":
        sent = _blast(send, send_batch, record, workload)
    else:
        sent = _paced(send, record, stamp, pack, workload, costs)
    elapsed = time.time_ns() - start
    finish()
    send_ns = float(np.median(costs[len(costs) // 10 :])) if len(costs) else 0.0
    results.put(("writer", {"sent": sent, "start": start, "elapsed_ns": elapsed, "send_ns": send_ns}))


def _blast(send, send_batch, record: np.ndarray, workload: dict) -> int:
    n = workload["records"]
    if workload["batch"] == 1:
        for _ in range(n):
            send(record)
        return n
    batch = np.repeat(record, workload["batch"])
    for _ in range(n // workload["batch"]):
        send_batch(batch)
    return n // workload["batch"] * workload["batch"]


def _paced(send, record: np.ndarray, stamp: memoryview, pack, workload: dict, costs: np.ndarray) -> int:
    period = 1_000_000_000 // workload["rate"]
    n = len(costs)
    clock, now_ns, pause = time.perf_counter_ns, time.time_ns, time.sleep
    due = clock()
    for i in range(n):
        due += period
        while clock() < due:
            pause(0)  # lets other threads run (mp.Queue's feeder thread needs the GIL to send)
        pack(stamp, TS_RECV, now_ns())
        began = clock()
        send(record)
        costs[i] = clock() - began
    return n


class _Tally:
    """What a reader measures: records, latencies, and its process's CPU time from the first record on."""

    def __init__(self, workload: dict):
        self.latency = workload["kind"] == "latency"
        self.latencies = np.empty(workload.get("rate", 0) * workload.get("seconds", 0), np.int64)
        self.count, self.first, self.cpu_first = 0, None, 0.0

    def add(self, records: np.ndarray) -> None:
        now = time.time_ns()
        if self.first is None:
            self.first, self.cpu_first = now, time.process_time()
        if self.latency:
            self.latencies[self.count : self.count + len(records)] = now - records["ts_recv"]
        self.count += len(records)

    def result(self, lost: int) -> dict:
        cpu = time.process_time() - self.cpu_first
        return {"count": self.count, "lost": lost, "first": self.first, "done": time.time_ns(),
                "cpu_us_per_record": cpu * 1e6 / max(self.count, 1),
                "latencies": self.latencies[: self.count]}  # fmt: skip


def _reader(transport, index: int, workload: dict, cpu: int | None, ready, results) -> None:
    _pin(cpu)
    tally = _Tally(workload)
    if hasattr(transport, "areceiver"):
        import uvloop

        receive, lost = transport.areceiver(index)
        ready.set()
        uvloop.run(_areceive(receive, tally))
    else:
        receive, lost = transport.receiver(index)
        ready.set()
        while (records := receive()) is not None:
            tally.add(records)
    results.put(("reader", tally.result(lost())))


async def _areceive(receive, tally: _Tally) -> None:
    while (records := await receive()) is not None:
        tally.add(records)


def run_trial(kind: str, readers: int, workload: dict, cpus: tuple[int | None, int | None]) -> dict:
    """One transport, one workload: start the readers, then the writer; collect what they measured."""
    transport = KINDS[kind](readers)
    results = CTX.Queue()
    ready = [CTX.Event() for _ in range(readers)]
    procs = [
        CTX.Process(target=_reader, args=(transport, i, workload, cpus[1], ready[i], results), daemon=True)
        for i in range(readers)
    ]
    try:
        for proc in procs:
            proc.start()
        for event in ready:
            if not event.wait(60):
                raise RuntimeError(f"{kind}: a reader did not start")
        writer = CTX.Process(target=_writer, args=(transport, workload, cpus[0], results), daemon=True)
        writer.start()
        procs.append(writer)
        writer_result = None
        readers_results = []
        while writer_result is None or len(readers_results) < readers:
            role, result = results.get(timeout=300)
            if role == "writer":
                writer_result = result
                transport.writer_done()
            else:
                readers_results.append(result)
        for proc in procs:
            proc.join(30)
        return _summarise(writer_result, readers_results, workload)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
        transport.close()


def _summarise(writer: dict, readers: list[dict], workload: dict) -> dict:
    sent = writer["sent"]
    summary = {
        "sent": sent,
        "publish_ns_per_record": writer["elapsed_ns"] / sent,
        "send_ns": writer["send_ns"],
        "lost_max": max(sent - r["count"] for r in readers),
        "throughput": min(r["count"] / ((r["done"] - writer["start"]) / 1e9) for r in readers),
        "reader_cpu_us_per_record": statistics.median(r["cpu_us_per_record"] for r in readers),
    }
    if workload["kind"] == "latency":
        warm = [r["latencies"][len(r["latencies"]) // 10 :] for r in readers]
        pooled = np.concatenate(warm) / 1e3
        summary.update({f"p{q}": float(np.percentile(pooled, q)) for q in (50, 99, 99.9)})
    return summary


# --- the ring's publish, measured alone ----------------------------------------------------------

# A typical book change: 2 of the top 10 levels change (a price and a size each); the record header too.
HEAD_FIELDS = ("flags", "instrument_id", "ts_exchange", "ts_recv", "change_id", "prev_change_id", "bid_count",
               "ask_count")  # fmt: skip
BOOK_FIELDS = (*HEAD_FIELDS, "_reserved2", "bid_px", "bid_sz", "ask_px", "ask_sz")
LEVELS = np.arange(10, dtype=np.float64)


def _publish_variants(writer: RingWriter, raw: memoryview) -> dict:
    """name -> (call, records per call); `raw`: the bytes of `writer.records`. Every variant publishes
    records readers accept."""
    record, batch = np.zeros(1, BOOK), np.zeros(BATCH, BOOK)
    scalar, size, mask = record[0], BOOK.itemsize, writer.capacity - 1
    head_at, pack_head = packer("book", HEAD_FIELDS)
    all_at, pack_all = packer("book", BOOK_FIELDS)
    px_at, sz_at = BOOK.fields["bid_px"][1], BOOK.fields["bid_sz"][1]
    head = (0, 0, 1, 2, 3, 4, 10, 10)
    full = (*head, 0, *LEVELS, *LEVELS, *LEVELS, *LEVELS)
    pack2 = struct.Struct("<d").pack_into
    slots = writer.records

    def scratch_copy_once():  # the adapter keeps its record and rewrites only what changed
        pack_head(record, head_at, *head)
        pack2(record, px_at + 8, 50_000.5)
        pack2(record, sz_at + 24, 3.0)
        writer.publish(record)

    def in_slot_full():  # the slot holds a record `capacity` publishes old: every field rewritten
        i = writer.claim() * size
        pack_all(slots, i + all_at, *full)
        writer.commit()

    def in_slot_copy_last():  # the previous slot copied over (a memcpy), then only what changed
        i = writer.claim()
        last = ((i - 1) & mask) * size
        i *= size
        raw[i : i + size] = raw[last : last + size]
        pack_head(slots, i + head_at, *head)
        pack2(slots, i + px_at + 8, 50_000.5)
        pack2(slots, i + sz_at + 24, 3.0)
        writer.commit()

    def claim_commit():
        writer.claim()
        writer.commit()

    def claim_commit_batch():
        writer.claim(BATCH)
        writer.commit()

    return {
        "publish(1-element array)": (lambda: writer.publish(record), 1),
        "publish(structured scalar)": (lambda: writer.publish(scalar), 1),
        f"publish_batch({BATCH}) per record": (lambda: writer.publish_batch(batch), BATCH),
        "claim() + commit(), nothing written": (claim_commit, 1),
        f"claim({BATCH}) + commit() per record": (claim_commit_batch, BATCH),
        "book change: own record + publish": (scratch_copy_once, 1),
        "book change: in slot, all fields": (in_slot_full, 1),
        "book change: in slot, copy last": (in_slot_copy_last, 1),
    }


def _sleepers_check_ns(writer: RingWriter, loops: int = 20_000) -> float:
    """What publish pays when nobody sleeps: the `if sleepers[0]` load and branch, net of the loop."""
    sleepers = writer._sleepers
    best = []
    for _ in range(5):
        began = time.perf_counter_ns()
        for _ in range(loops):
            if sleepers[0]:
                pass
        checked = time.perf_counter_ns() - began
        began = time.perf_counter_ns()
        for _ in range(loops):
            pass
        best.append((checked - (time.perf_counter_ns() - began)) / loops)
    return statistics.median(best)


def _time_variants(writer: RingWriter, rounds: int) -> dict[str, list[float]]:
    """ns per record of every variant, `rounds` timed loops each, interleaved so that machine noise
    hits every variant alike. (Its views of the slots go when it returns, before the writer closes.)"""
    with memoryview(writer.records).cast("B") as raw:
        loops = _publish_variants(writer, raw)
        samples: dict[str, list[float]] = {name: [] for name in loops}
        for _ in range(rounds):
            for name, (call, per) in loops.items():
                start = time.perf_counter_ns()
                for _ in range(200):
                    call()
                samples[name].append((time.perf_counter_ns() - start) / (200 * per))
    return samples


def ring_publish_cost(rounds: int) -> dict:
    """Median ns per record over `rounds` timed loops of every variant, and the sleepers check."""
    ring = f"book.BENCH{uuid.uuid4().hex[:8]}"
    with RingWriter.create(ring, "book", RING_CAPACITY) as writer:
        samples = _time_variants(writer, rounds)
        check = _sleepers_check_ns(writer)
        with RingReader(ring, start="oldest") as reader:  # everything published was intact
            seen = 0
            while len(got := reader.read()):
                seen += len(got)
            if reader.lost or not seen:
                raise RuntimeError(f"publish variants: {reader.lost} records lost of {seen + reader.lost}")
    costs = {name: {"median": statistics.median(v), "min": min(v)} for name, v in samples.items()}
    costs["sleepers check alone"] = {"median": check, "min": check}
    return costs


# --- the floor under a sleeping reader -----------------------------------------------------------


def _floor_sleeper(page: mmap.mmap, n: int, cpu: int | None, results) -> None:
    _pin(cpu)
    word = ctypes.c_uint32.from_buffer(page)
    stamp = memoryview(page).cast("q")
    when, latencies = futex.Timespec(), np.zeros(n, np.int64)
    for i in range(n):
        while word.value == i:
            futex.wait(ctypes.addressof(word), i, None, futex.MATCH_ANY, when)
        latencies[i] = time.time_ns() - stamp[1]
    results.put(latencies)


def wake_floor(rate: int, seconds: int, cpus: tuple[int | None, int | None]) -> dict:
    """From a bare FUTEX_WAKE in one process to the return of FUTEX_WAIT in another, through the same
    ctypes calls the ring uses: what any reader asleep in the kernel waits at least, here and now."""
    n = rate * seconds
    page = mmap.mmap(-1, mmap.PAGESIZE)  # shared with the forked child
    word, stamp = ctypes.c_uint32.from_buffer(page), memoryview(page).cast("q")
    results = CTX.Queue()
    child = CTX.Process(target=_floor_sleeper, args=(page, n, cpus[1], results), daemon=True)
    child.start()
    _pin(cpus[0])
    costs = np.zeros(n, np.int64)
    period, clock = 1_000_000_000 // rate, time.perf_counter_ns
    try:
        due = clock() + 100_000_000  # the child's start
        for i in range(n):
            due += period
            while clock() < due:
                time.sleep(0)
            stamp[1] = time.time_ns()
            word.value = i + 1
            began = clock()
            futex.wake(ctypes.addressof(word))
            costs[i] = clock() - began
        latencies = results.get(timeout=60)[n // 10 :] / 1e3
    finally:
        child.join(10)
        if child.is_alive():
            child.kill()
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    del word
    stamp.release()
    return {"rate": rate, "p50": float(np.percentile(latencies, 50)), "p99": float(np.percentile(latencies, 99)),
            "wake_call_ns": float(np.median(costs[n // 10 :]))}  # fmt: skip


# --- the run ---------------------------------------------------------------------------------------


def _cpus() -> tuple[int | None, int | None]:
    available = sorted(os.sched_getaffinity(0))
    return (available[0], available[1]) if len(available) >= 2 else (None, None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run (fewer records, 1 s of latency)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of tables")
    parser.add_argument("--records", type=int, help="records per throughput trial")
    parser.add_argument(
        "--rates", default="1000,10000", help="records/s of the latency trials, comma-separated"
    )
    parser.add_argument("--seconds", type=int, help="seconds per latency trial")
    parser.add_argument("--transports", default=",".join(TRANSPORTS), help="comma-separated subset")
    parser.add_argument("--repeat", type=int, help="rounds of every trial; each figure is the median round")
    parser.add_argument("--trials", default="", help="run only the trials whose title contains this")
    args = parser.parse_args(argv)
    records = args.records or (50_000 if args.quick else 300_000)
    seconds = args.seconds or (1 if args.quick else 3)
    repeat = args.repeat or (1 if args.quick else 3)
    kinds = [k for k in args.transports.split(",") if k]
    rates = [int(r) for r in args.rates.split(",") if r]
    cpus = _cpus()
    trials = {
        "throughput, 1 reader": (1, {"kind": "throughput", "records": records, "batch": 1}),
        "throughput, 4 readers": (4, {"kind": "throughput", "records": records, "batch": 1}),
        f"throughput, 1 reader, batches of {BATCH}": (
            1, {"kind": "throughput", "records": records, "batch": BATCH}),
    }  # fmt: skip
    for rate in rates:
        for readers in (1, 4):
            title = f"latency at {rate}/s, {readers} reader{'s' if readers > 1 else ''}"
            trials[title] = (readers, {"kind": "latency", "rate": rate, "seconds": seconds})
    trials = {title: trial for title, trial in trials.items() if args.trials in title}
    report = {
        "machine": {"cpus": os.cpu_count(), "pinning": f"writer cpu {cpus[0]}, readers cpu {cpus[1]}",
                    "load_average_before": os.getloadavg()[0]},
        "records": records, "rates": rates, "seconds": seconds, "rounds": repeat,
        "ring_publish_ns": ring_publish_cost(30 if args.quick else 100),
    }  # fmt: skip
    latency_trials = any(title.startswith("latency") for title in trials)
    floors: dict[int, list[dict]] = {rate: [] for rate in rates} if latency_trials else {}
    rounds: dict[str, dict[str, list[dict]]] = {title: {kind: [] for kind in kinds} for title in trials}
    for round_no in range(repeat):  # round-robin, so that the machine's moods hit every transport alike
        for rate, found in floors.items():
            found.append(wake_floor(rate, seconds, cpus))
        for title, (readers, workload) in trials.items():
            for kind in kinds:
                rounds[title][kind].append(run_trial(kind, readers, workload, cpus))
            if not args.json:
                print(f"... round {round_no + 1}/{repeat}: {title}", file=sys.stderr, flush=True)
    report["trials"] = {
        title: {kind: _median_round(results) for kind, results in by_kind.items()}
        for title, by_kind in rounds.items()
    }
    report["wake_floor"] = [_median_round(found) for found in floors.values()]
    report["machine"]["load_average_after"] = os.getloadavg()[0]
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_tables(report)
    return 0


def _median_round(results: list[dict]) -> dict:
    return {key: statistics.median(r[key] for r in results) for key in results[0]}


def print_tables(report: dict) -> None:
    machine = report["machine"]
    print(
        f"machine: {machine['cpus']} CPUs; pinning: {machine['pinning']}; load average "
        f"{machine['load_average_before']:.1f} before, {machine['load_average_after']:.1f} after; "
        f"median of {report['rounds']} round(s)"
    )
    print("\nring publish, measured alone (ns per record; median and best of the timed loops)")
    for name, cost in report["ring_publish_ns"].items():
        print(f"  {name:38s} median {cost['median']:7.0f}   min {cost['min']:7.0f}")
    for floor in report["wake_floor"]:
        print(
            f"\nfutex wake-up floor at {floor['rate']}/s (bare FUTEX_WAKE -> FUTEX_WAIT returns, across processes): "
            f"p50 {floor['p50']:.1f} us, p99 {floor['p99']:.1f} us; the FUTEX_WAKE call {floor['wake_call_ns']:.0f} ns"
        )
    for title, by_kind in report["trials"].items():
        ring = by_kind.get("ring")
        print(f"\n{title}")
        if title.startswith("latency"):
            print(
                f"  {'transport':12s} {'p50 us':>9s} {'p99 us':>9s} {'p99.9 us':>9s} {'p50 / ring':>11s} "
                f"{'lost':>6s} {'reader CPU us/rec':>18s} {'send ns p50':>12s}"
            )
            for kind, s in by_kind.items():
                ratio = s["p50"] / ring["p50"] if ring else float("nan")
                print(
                    f"  {kind:12s} {s['p50']:9.1f} {s['p99']:9.1f} {s['p99.9']:9.1f} {ratio:10.1f}x "
                    f"{s['lost_max']:6d} {s['reader_cpu_us_per_record']:18.1f} {s['send_ns']:12.0f}"
                )
        else:
            print(
                f"  {'transport':12s} {'records/s':>11s} {'ring / it':>10s} {'writer ns/rec':>14s} {'lost':>8s}"
            )
            for kind, s in by_kind.items():
                ratio = ring["throughput"] / s["throughput"] if ring else float("nan")
                print(
                    f"  {kind:12s} {s['throughput']:11,.0f} {ratio:9.1f}x {s['publish_ns_per_record']:14.0f} {s['lost_max']:8d}"
                )


if __name__ == "__main__":
    raise SystemExit(main())
