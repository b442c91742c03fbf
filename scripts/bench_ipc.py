"""Benchmark: the shared-memory ring against multiprocessing.Queue, faster-fifo and pyzmq over ipc.

The same stream of 384-byte book records goes from one writer process to 1 or 4 reader processes
through each transport, in one run:

- throughput: records/s delivered to every reader when the writer sends as fast as it can, one
  record per message (and, 1 reader, batches of 100 per message);
- latency: at a fixed rate (10k records/s), from just before the writer's send/publish to the
  moment the reader holds the record as a numpy record, p50/p99/p99.9;
- publish cost: the writer's time per record at full speed, and the ring's publish measured alone.

Fan-out: the ring is broadcast; for multiprocessing.Queue and faster-fifo the writer puts to one queue
per reader; pyzmq uses PUB/SUB over an ipc:// socket. Readers receive numpy records: the ring returns
them (at most 1024 per read), the others get bytes and call np.frombuffer. Ring readers spin with 1
reader and spin-then-sleep with 4 (4 spinning readers would fight over one core); the others block in
their receive call.
On a machine with 2 or more CPUs the writer is pinned to CPU 0 and every reader to CPU 1.

Usage: python scripts/bench_ipc.py [--quick] [--json] [--repeat K] [--trials TEXT] [--transports A,B]
                                  [--records N] [--rate R] [--seconds S]
Targets (issue 2): single publish <= 1 us median, batch <= 100 ns/record, ring p50 <= 10 us and
p99 <= 100 us at 10k/s with a spinning reader, throughput >= 3x and p50 <= 1/5 of the best alternative.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import statistics
import struct
import sys
import tempfile
import time
import uuid

import numpy as np

from feeder.ring import RingReader, RingWriter, create_ring
from feeder.ring.schema import record_schema

BOOK = record_schema("book").dtype
TS_RECV = BOOK.fields["ts_recv"][1]  # the writer's send timestamp travels in this field
BATCH = 100
READ_CHUNK = 1024  # most records a reader takes per call (ring read, faster-fifo get_many)
RING_CAPACITY = 1 << 16
END, PROBE = b"E", b"P"
TRANSPORTS = ("ring", "mp.Queue", "faster-fifo", "zmq-ipc")
CTX = mp.get_context("fork")


def _identity(x):
    return x


# --- transports: what the writer and each reader do ----------------------------------------------


class Ring:
    name = "ring"

    def __init__(self, readers: int):
        self.ring = f"book.BENCH{uuid.uuid4().hex[:8]}"
        self.owner = create_ring(self.ring, "book", RING_CAPACITY)
        self.wait = "spin" if readers == 1 else "spin_sleep"

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


KINDS = {cls.name: cls for cls in (Ring, MpQueue, FasterFifo, ZmqIpc)}


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
    start = time.time_ns()
    if workload["kind"] == "throughput":
        sent = _blast(send, send_batch, record, workload)
    else:
        sent = _paced(send, record, stamp, pack, workload)
    elapsed = time.time_ns() - start
    finish()
    results.put(("writer", {"sent": sent, "start": start, "elapsed_ns": elapsed}))


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


def _paced(send, record: np.ndarray, stamp: memoryview, pack, workload: dict) -> int:
    period = 1_000_000_000 // workload["rate"]
    n = workload["rate"] * workload["seconds"]
    clock, now_ns, pause = time.perf_counter_ns, time.time_ns, time.sleep
    due = clock()
    for _ in range(n):
        due += period
        while clock() < due:
            pause(0)  # lets other threads run (mp.Queue's feeder thread needs the GIL to send)
        pack(stamp, TS_RECV, now_ns())
        send(record)
    return n


def _reader(transport, index: int, workload: dict, cpu: int | None, ready, results) -> None:
    _pin(cpu)
    receive, lost = transport.receiver(index)
    ready.set()
    latencies = np.empty(workload.get("rate", 0) * workload.get("seconds", 0), np.int64)
    count, first = 0, None
    now_ns = time.time_ns
    while (records := receive()) is not None:
        now = now_ns()
        if first is None:
            first = now
        if workload["kind"] == "latency":
            latencies[count : count + len(records)] = now - records["ts_recv"]
        count += len(records)
    results.put(("reader", {"count": count, "lost": lost(), "first": first, "done": time.time_ns(),
                            "latencies": latencies[:count]}))  # fmt: skip


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
        "lost_max": max(sent - r["count"] for r in readers),
        "throughput": min(r["count"] / ((r["done"] - writer["start"]) / 1e9) for r in readers),
    }
    if workload["kind"] == "latency":
        warm = [r["latencies"][len(r["latencies"]) // 10 :] for r in readers]
        pooled = np.concatenate(warm) / 1e3
        summary.update({f"p{q}": float(np.percentile(pooled, q)) for q in (50, 99, 99.9)})
    return summary


# --- the ring's publish, measured alone ----------------------------------------------------------


def ring_publish_cost(rounds: int) -> dict:
    """Median ns per record over `rounds` timed loops: publish(array), publish(scalar), publish_batch."""
    ring = f"book.BENCH{uuid.uuid4().hex[:8]}"
    with RingWriter.create(ring, "book", RING_CAPACITY) as writer:
        record, batch = np.zeros(1, BOOK), np.zeros(BATCH, BOOK)
        scalar = record[0]
        loops = {
            "publish(1-element array)": (lambda: writer.publish(record), 1),
            "publish(structured scalar)": (lambda: writer.publish(scalar), 1),
            f"publish_batch({BATCH}) per record": (lambda: writer.publish_batch(batch), BATCH),
        }
        samples: dict[str, list[float]] = {name: [] for name in loops}
        for _ in range(rounds):  # interleaved, so that machine noise hits every variant alike
            for name, (call, per) in loops.items():
                start = time.perf_counter_ns()
                for _ in range(200):
                    call()
                samples[name].append((time.perf_counter_ns() - start) / (200 * per))
    return {name: {"median": statistics.median(v), "min": min(v)} for name, v in samples.items()}


# --- the run ---------------------------------------------------------------------------------------


def _cpus() -> tuple[int | None, int | None]:
    available = sorted(os.sched_getaffinity(0))
    return (available[0], available[1]) if len(available) >= 2 else (None, None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run (fewer records, 1 s of latency)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of tables")
    parser.add_argument("--records", type=int, help="records per throughput trial")
    parser.add_argument("--rate", type=int, default=10_000, help="records/s in the latency trials")
    parser.add_argument("--seconds", type=int, help="seconds per latency trial")
    parser.add_argument("--transports", default=",".join(TRANSPORTS), help="comma-separated subset")
    parser.add_argument("--repeat", type=int, help="rounds of every trial; each figure is the median round")
    parser.add_argument("--trials", default="", help="run only the trials whose title contains this")
    args = parser.parse_args(argv)
    records = args.records or (50_000 if args.quick else 300_000)
    seconds = args.seconds or (1 if args.quick else 3)
    repeat = args.repeat or (1 if args.quick else 3)
    kinds = [k for k in args.transports.split(",") if k]
    cpus = _cpus()
    trials = {
        "throughput, 1 reader": (1, {"kind": "throughput", "records": records, "batch": 1}),
        "throughput, 4 readers": (4, {"kind": "throughput", "records": records, "batch": 1}),
        f"throughput, 1 reader, batches of {BATCH}": (
            1, {"kind": "throughput", "records": records, "batch": BATCH}),
        f"latency at {args.rate}/s, 1 reader": (1, {"kind": "latency", "rate": args.rate, "seconds": seconds}),
        f"latency at {args.rate}/s, 4 readers": (4, {"kind": "latency", "rate": args.rate, "seconds": seconds}),
    }  # fmt: skip
    trials = {title: trial for title, trial in trials.items() if args.trials in title}
    report = {
        "machine": {"cpus": os.cpu_count(), "pinning": f"writer cpu {cpus[0]}, readers cpu {cpus[1]}",
                    "load_average_before": os.getloadavg()[0]},
        "records": records, "rate": args.rate, "seconds": seconds, "rounds": repeat,
        "ring_publish_ns": ring_publish_cost(30 if args.quick else 100),
    }  # fmt: skip
    rounds: dict[str, dict[str, list[dict]]] = {title: {kind: [] for kind in kinds} for title in trials}
    for round_no in range(repeat):  # round-robin, so that the machine's moods hit every transport alike
        for title, (readers, workload) in trials.items():
            for kind in kinds:
                rounds[title][kind].append(run_trial(kind, readers, workload, cpus))
            if not args.json:
                print(f"... round {round_no + 1}/{repeat}: {title}", file=sys.stderr, flush=True)
    report["trials"] = {
        title: {kind: _median_round(results) for kind, results in by_kind.items()}
        for title, by_kind in rounds.items()
    }
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
        print(f"  {name:34s} median {cost['median']:7.0f}   min {cost['min']:7.0f}")
    for title, by_kind in report["trials"].items():
        ring = by_kind.get("ring")
        print(f"\n{title}")
        if title.startswith("latency"):
            print(
                f"  {'transport':12s} {'p50 us':>9s} {'p99 us':>9s} {'p99.9 us':>9s} {'p50 / ring':>11s} {'lost':>6s}"
            )
            for kind, s in by_kind.items():
                ratio = s["p50"] / ring["p50"] if ring else float("nan")
                print(
                    f"  {kind:12s} {s['p50']:9.1f} {s['p99']:9.1f} {s['p99.9']:9.1f} {ratio:10.1f}x {s['lost_max']:6d}"
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
