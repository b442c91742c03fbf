"""Benchmark: one Deribit book change message from frame bytes to a published ring record.

The stream: a snapshot of a book with 200 levels per side, then raw book changes of 1-3 entries that
cluster near the top (as on a real book). Measured, per message, side by side in one run:

- the real path: the client's receive callback (`Inbox.dispatch`: one orjson decode and the routing)
  -> `Feed._on_notification` -> `DeribitAdapter.feed` (header checks, entries validated as they are
  applied, only what changed in the top N written into the record, audit window) -> `RingWriter.publish`;
  warm (messages back to back) and cold (one message every millisecond, as at 1,000 updates/s, where
  every message finds caches that other work has since filled);
- its stages alone: decode, validate + apply (one pass), record (what changed + header), publish;
- the Python frames one message costs on the real path (function calls, counted with sys.setprofile);
- books side by side (update + record): one pass writing only what changed (`feeder.core.book`); the
  same, always repacking the top N; parse then apply then repack (the first wave's path); a dict per
  side with `heapq.nlargest`;
- publishing k records of one socket read: one `publish` each (what the feeder does) vs each copied
  into a batch published once at the end of the read.

Usage: python scripts/bench_adapter.py [--messages N] [--cold-messages N] [--levels L] [--repeat R] [--json]
Targets (issue 11): real path median <= 5 us warm, <= 12 us cold.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import random
import statistics
import sys
import time

import numpy as np
import orjson

from feeder.client import ClientConfig
from feeder.core.book import DEPTH, L2Book
from feeder.exchanges.deribit.channels import ChannelConfig
from feeder.exchanges.deribit.parse import parse_book
from feeder.exchanges.deribit.records import packer, scratch
from feeder.ring import RingWriter
from feeder.runtime.feed import Feed, FeedConfig

INSTRUMENT = "BTC-PERPETUAL"
CHANNEL = f"book.{INSTRUMENT}.raw"
TICK = 0.5
TARGET_WARM_US = 5.0
TARGET_COLD_US = 12.0
COLD_GAP_S = 0.001
BATCH_SIZES = (1, 5, 10)  # records of one ring in one socket read


def make_stream(messages: int, levels: int, seed: int) -> tuple[bytes, list[bytes]]:
    """A snapshot and `messages` chained changes; updates cluster near the top, as on a real book."""
    rng = random.Random(seed)
    mid = 50_000.0
    bids = {mid - TICK * (i + 1): float(rng.randint(1, 500) * 10) for i in range(levels)}
    asks = {mid + TICK * (i + 1): float(rng.randint(1, 500) * 10) for i in range(levels)}
    change_id = 1_000_000

    def note(data: dict) -> bytes:
        data |= {"instrument_name": INSTRUMENT, "timestamp": 1_700_000_000_000}
        return orjson.dumps(
            {"jsonrpc": "2.0", "method": "subscription", "params": {"channel": CHANNEL, "data": data}}
        )

    snap = note(
        {
            "type": "snapshot",
            "change_id": change_id,
            "bids": [["new", p, a] for p, a in bids.items()],
            "asks": [["new", p, a] for p, a in asks.items()],
        }
    )
    stream = []
    for _ in range(messages):
        entries: dict[str, list] = {"bids": [], "asks": []}
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            side_name = rng.choice(("bids", "asks"))
            side = bids if side_name == "bids" else asks
            ordered = sorted(side, reverse=side_name == "bids")
            depth = min(int(rng.expovariate(1 / 12)), len(ordered) - 1)
            price = ordered[depth]
            if any(e[1] == price for e in entries[side_name]):
                continue
            roll = rng.random()
            if roll < 0.15 and len(side) > levels // 2:
                del side[price]
                entries[side_name].append(["delete", price, 0.0])
            elif roll < 0.30:
                outer = ordered[-1] + (TICK if side_name == "asks" else -TICK)
                fresh = outer if outer not in side else price
                if fresh in side:
                    continue
                side[fresh] = float(rng.randint(1, 500) * 10)
                entries[side_name].append(["new", fresh, side[fresh]])
            else:
                side[price] = float(rng.randint(1, 500) * 10)
                entries[side_name].append(["change", price, side[price]])
        stream.append(
            note({"type": "change", "prev_change_id": change_id, "change_id": change_id + 3, **entries})
        )
        change_id += 3
    return snap, stream


class RealPath:
    """The worker's receive path with its ring, outside an event loop: `dispatch(frame, recv_ns)` is
    what the link calls for every message."""

    def __init__(self, instance: str):
        config = FeedConfig(
            client=ClientConfig(url="ws://127.0.0.1:9/unused"),
            rings=("book.BTC",),
            channels=ChannelConfig(interval="raw"),
            ring_capacity=1 << 16,
            instance=instance,
            audit_interval=0,
        )
        self.feed = Feed(config)
        self.feed.rings.open((r.ring, r.record_type) for r in self.feed.routes.values())
        self.dispatch = self.feed.client._inbox.dispatch

    def reset(self, snap: bytes) -> None:
        """A fresh snapshot: the stream can be replayed from its start."""
        self.feed.adapter.disconnected(time.time_ns())
        self.dispatch(snap, time.time_ns())

    def close(self) -> None:
        self.feed.rings.close()

    @property
    def applied(self) -> int:
        return self.feed.adapter.stats.book_changes


def bench_real(path: RealPath, snap: bytes, stream: list[bytes], gap_s: float) -> list[int]:
    """ns per message on the real path; `gap_s` between messages (0: back to back)."""
    path.reset(snap)
    before = path.applied
    clock, wall, dispatch, sleep = time.perf_counter_ns, time.time_ns, path.dispatch, time.sleep
    times = []
    for frame in stream:
        if gap_s:
            sleep(gap_s)
        t0 = clock()
        dispatch(frame, wall())
        times.append(clock() - t0)
    if path.applied - before != len(stream):
        raise SystemExit(f"the adapter applied {path.applied - before} of {len(stream)} messages")
    return times


def count_frames(path: RealPath, snap: bytes, stream: list[bytes]) -> dict[str, float]:
    """Python function frames and C calls per message on the real path."""
    path.reset(snap)
    counts = {"call": 0, "c_call": 0}

    def profile(_frame: object, event: str, _arg: object) -> None:
        if event in counts:
            counts[event] += 1

    dispatch, wall = path.dispatch, time.time_ns
    sys.setprofile(profile)
    try:
        for frame in stream:
            dispatch(frame, wall())
    finally:
        sys.setprofile(None)
    # the profiler also sees the loop's own calls (wall(), dispatch itself is a Python frame: kept)
    return {"python_frames": counts["call"] / len(stream), "c_calls": counts["c_call"] / len(stream) - 1}


def bench_stages(snap: bytes, stream: list[bytes], writer: RingWriter) -> dict[str, list[int]]:
    """Per-message time of each stage of the one pass, in ns."""
    offset, pack_header = packer("book", ("flags", "ts_exchange", "ts_recv", "change_id", "prev_change_id",
                                          "bid_count", "ask_count"))  # fmt: skip
    record = scratch("book")
    buf = memoryview(record.view(np.uint8))
    book = L2Book(buf)
    first = parse_book(orjson.loads(snap)["params"]["data"], INSTRUMENT)
    book.load(first.bids, first.asks)
    book.write()
    clock = time.perf_counter_ns
    stages: dict[str, list[int]] = {k: [] for k in ("decode", "validate+apply", "record", "publish", "total")}
    for frame in stream:
        t0 = clock()
        data = orjson.loads(frame)["params"]["data"]
        t1 = clock()
        bids, asks = data["bids"], data["asks"]
        if book.bids.apply(bids) or book.asks.apply(asks):
            raise SystemExit("the one pass refused a message of the stream")
        t2 = clock()
        counts = book.write(bids, asks)
        flags = 4 if book.crossed() else 0
        pack_header(buf, offset, flags, data["timestamp"] * 1_000_000, t0, data["change_id"], data["prev_change_id"],
                    *counts)  # fmt: skip
        t3 = clock()
        writer.publish(record)
        t4 = clock()
        for name, value in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0), strict=True):
            stages[name].append(value)
    return stages


def _updates(snap: bytes, stream: list[bytes]):
    first = parse_book(orjson.loads(snap)["params"]["data"], INSTRUMENT)
    return first, [orjson.loads(f)["params"]["data"] for f in stream]


def bench_book_one_pass(snap: bytes, stream: list[bytes], always_repack: bool) -> list[int]:
    """Validate + apply + the record's levels, feeder.core.book."""
    first, updates = _updates(snap, stream)
    record = scratch("book")
    book = L2Book(memoryview(record.view(np.uint8)))
    book.load(first.bids, first.asks)
    book.write()
    clock, times = time.perf_counter_ns, []
    for data in updates:
        t0 = clock()
        bids, asks = data["bids"], data["asks"]
        book.bids.apply(bids)
        book.asks.apply(asks)
        if always_repack:
            book.bids.touched = book.asks.touched = 2
        book.write(bids, asks)
        times.append(clock() - t0)
    return times


def bench_book_two_passes(snap: bytes, stream: list[bytes]) -> list[int]:
    """The first wave's path: parse_book (validate), then set/remove, then repack the touched sides."""
    first, updates = _updates(snap, stream)
    record = scratch("book")
    book = L2Book(memoryview(record.view(np.uint8)))
    book.load(first.bids, first.asks)
    book.write()
    clock, times = time.perf_counter_ns, []
    for data in updates:
        t0 = clock()
        update = parse_book(data, INSTRUMENT)
        for side, entries in ((book.bids, update.bids), (book.asks, update.asks)):
            for action, price, amount in entries:
                if action == "delete":
                    side.remove(price)
                else:
                    side.set(price, amount)
        book.write()
        times.append(clock() - t0)
    return times


def bench_book_dict(snap: bytes, stream: list[bytes]) -> list[int]:
    """Book update + top-N into a record, plain dicts and heapq.nlargest/nsmallest."""
    first, updates = _updates(snap, stream)
    bids, asks = dict(first.bids), dict(first.asks)
    record = scratch("book")
    bid_px, bid_sz, ask_px, ask_sz = (record[f][0] for f in ("bid_px", "bid_sz", "ask_px", "ask_sz"))
    clock, times = time.perf_counter_ns, []
    for data in updates:
        t0 = clock()
        for side, entries in ((bids, data["bids"]), (asks, data["asks"])):
            for action, price, amount in entries:
                if action == "delete":
                    side.pop(price, None)
                else:
                    side[price] = amount
        top_b = heapq.nlargest(DEPTH, bids)
        top_a = heapq.nsmallest(DEPTH, asks)
        bid_px[: len(top_b)] = top_b
        bid_sz[: len(top_b)] = [bids[p] for p in top_b]
        ask_px[: len(top_a)] = top_a
        ask_sz[: len(top_a)] = [asks[p] for p in top_a]
        times.append(clock() - t0)
    return times


def bench_batching(writer: RingWriter, reads: int = 3000) -> dict[str, dict[str, float]]:
    """ns per record to publish k book records of one read: one `publish` each from the scratch record
    (what the feeder does), or each copied into a batch and one `publish_batch` at the end of the read."""
    record = scratch("book")
    source, size = memoryview(record.view(np.uint8)), record.itemsize
    batch = scratch("book", 16)
    into = memoryview(batch.view(np.uint8))
    clock, out = time.perf_counter_ns, {}
    for k in BATCH_SIZES:
        single, batched = [], []
        for _ in range(reads):
            t0 = clock()
            for _ in range(k):
                writer.publish(record)
            t1 = clock()
            for i in range(k):
                into[i * size : (i + 1) * size] = source
            writer.publish_batch(batch[:k])
            t2 = clock()
            single.append(t1 - t0)
            batched.append(t2 - t1)
        out[str(k)] = {
            "one publish each": statistics.median(single) / k,
            "one batch": statistics.median(batched) / k,
        }
    return out


def timer_overhead() -> int:
    clock = time.perf_counter_ns
    samples = []
    for _ in range(10_000):
        t0 = clock()
        samples.append(clock() - t0)
    return int(statistics.median(samples))


def summary(times: list[int]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "median_us": ordered[len(ordered) // 2] / 1000,
        "p99_us": ordered[int(len(ordered) * 0.99)] / 1000,
        "mean_us": sum(ordered) / len(ordered) / 1000,
    }


def _median_of(rounds: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}


def run(args: argparse.Namespace) -> dict:
    snap, stream = make_stream(args.messages, args.levels, args.seed)
    cold_stream = stream[: args.cold_messages]
    instance = os.environ.get("FEEDER_INSTANCE") or f"bench-adapter-{os.getpid()}"
    rounds: dict[str, list] = {"warm": [], "cold": [], "stages": [], "books": [], "batching": []}
    path = RealPath(instance)
    writer = RingWriter.create("book.STAGES", "book", 1 << 16, instance=instance)
    try:
        frames = count_frames(path, snap, stream[:2000])
        for _ in range(args.repeat):  # interleaved, so machine noise hits every variant alike
            rounds["warm"].append(summary(bench_real(path, snap, stream, 0.0)))
            rounds["cold"].append(summary(bench_real(path, snap, cold_stream, COLD_GAP_S)))
            rounds["stages"].append({k: summary(v) for k, v in bench_stages(snap, stream, writer).items()})
            rounds["batching"].append(bench_batching(writer))
            rounds["books"].append(
                {
                    "one pass, only what changed": summary(bench_book_one_pass(snap, stream, False)),
                    "one pass, always repack": summary(bench_book_one_pass(snap, stream, True)),
                    "parse, then apply, repack": summary(bench_book_two_passes(snap, stream)),
                    "dict + nlargest": summary(bench_book_dict(snap, stream)),
                }
            )
    finally:
        writer.close()
        path.close()
    return {
        "messages": args.messages,
        "cold_messages": len(cold_stream),
        "levels_per_side": args.levels,
        "repeat": args.repeat,
        "timer_overhead_ns": timer_overhead(),
        "load_average": os.getloadavg()[0],
        "real_path_warm": _median_of(rounds["warm"]),
        "real_path_cold": _median_of(rounds["cold"]),
        "frames_per_message": frames,
        "stages": {k: _median_of([r[k] for r in rounds["stages"]]) for k in rounds["stages"][0]},
        "books": {k: _median_of([r[k] for r in rounds["books"]]) for k in rounds["books"][0]},
        "publish_per_record_ns": {
            k: _median_of([r[k] for r in rounds["batching"]]) for k in rounds["batching"][0]
        },
        "targets": {
            "warm_median_us": TARGET_WARM_US,
            "cold_median_us": TARGET_COLD_US,
            "warm_met": _median_of(rounds["warm"])["median_us"] <= TARGET_WARM_US,
            "cold_met": _median_of(rounds["cold"])["median_us"] <= TARGET_COLD_US,
        },
    }


def print_report(result: dict) -> None:
    print(f"{result['messages']} book change messages ({result['cold_messages']} cold), "
          f"{result['levels_per_side']} levels per side, medians of {result['repeat']} rounds "
          f"(timer overhead {result['timer_overhead_ns']} ns; load average {result['load_average']:.1f})\n")  # fmt: skip
    head = f"{'':<44}{'median us':>10}{'p99 us':>10}{'mean us':>10}"
    print(head)
    for name, key, target in (("frame -> ring, warm", "real_path_warm", TARGET_WARM_US),
                              ("frame -> ring, cold (1 message/ms)", "real_path_cold", TARGET_COLD_US)):  # fmt: skip
        s = result[key]
        met = "met" if s["median_us"] <= target else "NOT met"
        print(f"{name:<44}{s['median_us']:>10.2f}{s['p99_us']:>10.2f}{s['mean_us']:>10.2f}"
              f"   target <= {target:g} us: {met}")  # fmt: skip
    for name, s in result["stages"].items():
        print(f"  stage: {name:<36}{s['median_us']:>10.2f}{s['p99_us']:>10.2f}{s['mean_us']:>10.2f}")
    f = result["frames_per_message"]
    print(
        f"\nPython frames per message on the real path: {f['python_frames']:.1f} (C calls {f['c_calls']:.1f})"
    )
    print(
        "\npublish, ns per record, k records of one ring in one read: one publish each | copied into a batch"
    )
    for k, figures in result["publish_per_record_ns"].items():
        print(f"  k = {k:>2}: {figures['one publish each']:>8.0f} | {figures['one batch']:>8.0f}")
    print(f"\n{'book update + record levels':<44}{'median us':>10}{'p99 us':>10}{'vs ours':>10}")
    books = result["books"]
    base = books["one pass, only what changed"]["median_us"]
    for name, s in books.items():
        print(f"{name:<44}{s['median_us']:>10.2f}{s['p99_us']:>10.2f}{s['median_us'] / base:>9.2f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--cold-messages", type=int, default=3_000, help="of them, sent one per millisecond")
    parser.add_argument("--levels", type=int, default=200, help="price levels per side")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; medians are reported")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = parser.parse_args(argv)
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
