"""Benchmark: one Deribit book change message from bytes to a published ring record.

Stages, timed per message on a stream of `raw` book changes for a book with 200 levels per side:
decode (orjson) -> parse (validate every field) -> apply (book update) -> fill (top-N + header into the
scratch record) -> publish (RingWriter). Then the same stream through `DeribitAdapter.feed` +
publish (the code path the feeder runs), and alternatives for the book side by side:

- `sorted-list` (feeder.core.book): sorted keys + dict, top-N repacked only when touched
- `sorted-list, always repack`: the same book, top-N repacked after every message
- `dict + nlargest`: a plain dict per side, top-N found with heapq on every message

Usage: python scripts/bench_adapter.py [--messages N] [--levels L] [--json]
Target (issue 5): median <= 15 us for decode + update + top-N fill + publish.
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

from feeder.core.book import DEPTH, L2Book
from feeder.exchanges.deribit.adapter import DeribitAdapter
from feeder.exchanges.deribit.channels import ChannelMap
from feeder.exchanges.deribit.parse import parse_book
from feeder.exchanges.deribit.records import packer, scratch
from feeder.ring import RingWriter

INSTRUMENT = "BTC-PERPETUAL"
CHANNEL = f"book.{INSTRUMENT}.raw"
TICK = 0.5


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


def _apply(book: L2Book, update) -> None:
    for side, entries in ((book.bids, update.bids), (book.asks, update.asks)):
        for action, price, amount in entries:
            if action == "delete":
                side.remove(price)
            else:
                side.set(price, amount)


def bench_stages(snap: bytes, stream: list[bytes], writer: RingWriter) -> dict[str, list[int]]:
    """Per-message time of each stage, in ns."""
    offset, pack_header = packer("book", ("flags", "ts_exchange", "ts_recv", "change_id", "prev_change_id",
                                          "bid_count", "ask_count"))  # fmt: skip
    record = scratch("book")
    buf = memoryview(record.view(np.uint8))
    book = L2Book()
    first = parse_book(orjson.loads(snap)["params"]["data"], INSTRUMENT)
    book.load(first.bids, first.asks)
    clock = time.perf_counter_ns
    stages: dict[str, list[int]] = {k: [] for k in ("decode", "parse", "apply", "fill", "publish", "total")}
    for frame in stream:
        t0 = clock()
        msg = orjson.loads(frame)
        t1 = clock()
        update = parse_book(msg["params"]["data"], INSTRUMENT)
        t2 = clock()
        _apply(book, update)
        t3 = clock()
        counts = book.write_top(buf)
        crossed = book.crossed()
        pack_header(buf, offset, 4 if crossed else 0, update.timestamp_ms * 1_000_000, t0, update.change_id,
                    update.prev_change_id, *counts)  # fmt: skip
        t4 = clock()
        writer.publish(record)
        t5 = clock()
        for name, value in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t5 - t0), strict=True):
            stages[name].append(value)
    return stages


def bench_adapter(snap: bytes, stream: list[bytes], writer: RingWriter) -> list[int]:
    """decode + DeribitAdapter.feed + publish, per message."""
    adapter = DeribitAdapter(ChannelMap(authenticated=True).routes(["book.BTC"]).values())
    for _, rec in adapter.feed(orjson.loads(snap), time.time_ns()):
        writer.publish(rec)
    clock, loads, feed, publish = time.perf_counter_ns, orjson.loads, adapter.feed, writer.publish
    times = []
    for frame in stream:
        t0 = clock()
        for _, rec in feed(loads(frame), t0):
            publish(rec)
        times.append(clock() - t0)
    if adapter.stats.book_changes != len(stream):
        raise SystemExit(
            f"adapter applied {adapter.stats.book_changes} of {len(stream)}: {adapter.metrics()}"
        )
    return times


def _updates(snap: bytes, stream: list[bytes]):
    first = parse_book(orjson.loads(snap)["params"]["data"], INSTRUMENT)
    return first, [parse_book(orjson.loads(f)["params"]["data"], INSTRUMENT) for f in stream]


def bench_book_sorted(snap: bytes, stream: list[bytes], always_repack: bool) -> list[int]:
    """Book update + top-N into a record, feeder.core.book."""
    first, updates = _updates(snap, stream)
    book, record = L2Book(), scratch("book")
    buf = memoryview(record.view(np.uint8))
    book.load(first.bids, first.asks)
    clock, times = time.perf_counter_ns, []
    for update in updates:
        t0 = clock()
        _apply(book, update)
        if always_repack:
            book.invalidate()
        book.write_top(buf)
        times.append(clock() - t0)
    return times


def bench_book_dict(snap: bytes, stream: list[bytes]) -> list[int]:
    """Book update + top-N into a record, plain dicts and heapq.nlargest/nsmallest."""
    first, updates = _updates(snap, stream)
    bids, asks = dict(first.bids), dict(first.asks)
    record = scratch("book")
    bid_px, bid_sz, ask_px, ask_sz = (record[f][0] for f in ("bid_px", "bid_sz", "ask_px", "ask_sz"))
    clock, times = time.perf_counter_ns, []
    for update in updates:
        t0 = clock()
        for side, entries in ((bids, update.bids), (asks, update.asks)):
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--levels", type=int, default=200, help="price levels per side")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = parser.parse_args(argv)

    snap, stream = make_stream(args.messages, args.levels, args.seed)
    instance = f"bench{os.getpid()}"
    writer = RingWriter.create("book.BENCH", "book", 1 << 16, instance=instance)
    try:
        stages = {name: summary(t) for name, t in bench_stages(snap, stream, writer).items()}
        path = summary(bench_adapter(snap, stream, writer))
    finally:
        writer.close()
    books = {
        "sorted-list": summary(bench_book_sorted(snap, stream, always_repack=False)),
        "sorted-list, always repack": summary(bench_book_sorted(snap, stream, always_repack=True)),
        "dict + nlargest": summary(bench_book_dict(snap, stream)),
    }
    result = {
        "messages": args.messages,
        "levels_per_side": args.levels,
        "timer_overhead_ns": timer_overhead(),
        "stages": stages,
        "adapter_feed_and_publish": path,
        "book_update_and_top_n": books,
        "target_median_us": 15.0,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{args.messages} book change messages, {args.levels} levels per side "
          f"(timer overhead {result['timer_overhead_ns']} ns per reading)\n")  # fmt: skip
    print(f"{'stage':<34}{'median us':>10}{'p99 us':>10}{'mean us':>10}")
    for name, s in stages.items():
        print(f"{name:<34}{s['median_us']:>10.2f}{s['p99_us']:>10.2f}{s['mean_us']:>10.2f}")
    print(f"{'decode+adapter.feed+publish':<34}{path['median_us']:>10.2f}{path['p99_us']:>10.2f}"
          f"{path['mean_us']:>10.2f}   target median <= 15 us")  # fmt: skip
    print(f"\n{'book update + top-N fill':<34}{'median us':>10}{'p99 us':>10}{'vs ours':>10}")
    base = books["sorted-list"]["median_us"]
    for name, s in books.items():
        print(f"{name:<34}{s['median_us']:>10.2f}{s['p99_us']:>10.2f}{s['median_us'] / base:>9.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
