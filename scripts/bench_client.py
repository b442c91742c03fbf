"""Benchmark the connection client's receive path against a bare `websockets` loop, side by side.

A sender process (a plain websockets server on uvloop) writes N pre-framed Deribit-like book
notifications straight to its socket as fast as the kernel takes them, so the receiver is the
bottleneck. In this process, on uvloop, each variant receives the N messages:

- bare recv:        `await ws.recv()` in a loop, nothing else (the idiomatic loop: text frames as str)
- bare recv (bytes): the same with recv(decode=False) (no UTF-8 decode: the strict ceiling)
- bare recv+decode: recv, orjson.loads, call a handler (what any client must at least do)
- feeder Client:    feeder.client.Client with on_notification (heartbeat off, no recording)
- feeder Client+rec: the same with record_to (the background recorder's cost on the receive path)

Rounds are interleaved; the table shows median msgs/s per wall second and per CPU second of this
process (the CPU rate is what one core can do; it ignores time lost to other load on the machine), and
the ratios to bare recv.
Then memory: RSS and Python heap per idle connection (bare websockets vs Client) and per pending
request (requests to a server that never answers).

    /work/venv/bin/python scripts/bench_client.py [--messages 200000] [--rounds 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing as mp
import os
import statistics
import struct
import sys
import tempfile
import time
import tracemalloc

import orjson
import psutil
import uvloop
import websockets

from feeder.client import Client, ClientConfig

FRAME = orjson.dumps(
    {
        "jsonrpc": "2.0",
        "method": "subscription",
        "params": {
            "channel": "book.BTC-PERPETUAL.raw",
            "data": {
                "type": "change",
                "timestamp": 1764000000000,
                "prev_change_id": 13169025645,
                "instrument_name": "BTC-PERPETUAL",
                "change_id": 13169031288,
                "bids": [["change", 91234.5, 4737.0], ["delete", 91230.0, 0.0]],
                "asks": [["new", 91240.0, 1200.0]],
            },
        },
    }
)


def _ws_frame(payload: bytes) -> bytes:
    """An unmasked server-to-client text frame."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x81, n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x81, 126, n)
    else:
        head = struct.pack("!BBQ", 0x81, 127, n)
    return head + payload


# --- sender process --------------------------------------------------------------------------------


async def _serve(port_out: mp.Queue) -> None:
    blob = _ws_frame(FRAME) * 1000

    async def handler(ws):
        async for msg in ws:
            text = msg if isinstance(msg, str) else msg.decode()
            if text.startswith("go "):
                n = int(text.split()[1])
                for _ in range(n // 1000):
                    ws.transport.write(blob)
                    await ws.drain()  # flow control: wait while the kernel buffer is full
            # anything else (JSON-RPC requests) is never answered: that is the pending-request test

    async with websockets.serve(
        handler, "127.0.0.1", 0, max_size=None, ping_interval=None, compression=None
    ) as srv:
        port_out.put(srv.sockets[0].getsockname()[1])
        await asyncio.Future()


def _sender(port_out: mp.Queue) -> None:
    uvloop.run(_serve(port_out))


# --- receivers -------------------------------------------------------------------------------------


class Clock:
    """Wall and process CPU time from the first message to the last (CPU ignores load from others)."""

    def start(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def stop(self, n: int) -> tuple[float, float]:
        """(msgs per wall second, msgs per CPU second) for the n-1 messages after the first."""
        return (n - 1) / (time.perf_counter() - self.wall), (n - 1) / (time.process_time() - self.cpu)


def _connect(url: str):
    return websockets.connect(url, max_size=None, ping_interval=None, compression=None)


async def bare_recv(url: str, n: int, decode: bool | None = None) -> tuple[float, float]:
    async with _connect(url) as ws:
        await ws.send(f"go {n}")
        recv, clock = ws.recv, Clock()
        await recv(decode)
        clock.start()
        for _ in range(n - 1):
            await recv(decode)
        return clock.stop(n)


async def bare_decode(url: str, n: int) -> tuple[float, float]:
    count = [0]

    def handler(msg: dict, recv_ns: int) -> None:
        count[0] += 1

    async with _connect(url) as ws:
        await ws.send(f"go {n}")
        recv, loads, time_ns, clock = ws.recv, orjson.loads, time.time_ns, Clock()
        await recv(False)
        clock.start()
        for _ in range(n - 1):
            msg = loads(await recv(False))
            if "id" not in msg:
                handler(msg, time_ns())
        return clock.stop(n)


async def feeder_client(url: str, n: int, record_to: str | None = None) -> tuple[float, float]:
    done = asyncio.get_running_loop().create_future()
    clock, count = Clock(), [0]

    def on_notification(msg: dict, recv_ns: int) -> None:
        count[0] += 1
        if count[0] == 1:
            clock.start()
        elif count[0] == n:
            done.set_result(clock.stop(n))

    config = ClientConfig(url=url, heartbeat="none", record_to=record_to, max_frame_size=1 << 20)
    client = Client(config, on_notification=on_notification)
    await client.connect()
    try:
        await client.send(f"go {n}")
        return await done
    finally:
        await client.close(timeout=2.0)


# --- memory ----------------------------------------------------------------------------------------


def _rss() -> int:
    gc.collect()
    return psutil.Process().memory_info().rss


async def memory_idle(url: str, k: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in ("bare websockets", "feeder Client"):
        tracemalloc.start()
        rss0, heap0 = _rss(), tracemalloc.get_traced_memory()[0]
        if name == "bare websockets":
            conns = [await websockets.connect(url, ping_interval=None, compression=None) for _ in range(k)]
        else:
            conns = [Client(ClientConfig(url=url, heartbeat="none")) for _ in range(k)]
            for c in conns:
                await c.connect()
        rss1, heap1 = _rss(), tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        for c in conns:
            await c.close()
        out[f"{name}: RSS per idle connection (bytes)"] = (rss1 - rss0) / k
        out[f"{name}: Python heap per idle connection (bytes)"] = (heap1 - heap0) / k
    return out


async def memory_pending(url: str, m: int) -> dict[str, float]:
    client = Client(ClientConfig(url=url, heartbeat="none", request_timeout=600.0))
    await client.connect()
    try:
        tracemalloc.start()
        rss0, heap0 = _rss(), tracemalloc.get_traced_memory()[0]
        tasks = [asyncio.create_task(client.request("public/get_time")) for _ in range(m)]
        while client.metrics()["pending_requests"] < m:
            await asyncio.sleep(0.01)
        rss1, heap1 = _rss(), tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await client.close(timeout=1.0)
    return {
        "RSS per pending request, incl. the caller's task (bytes)": (rss1 - rss0) / m,
        "Python heap per pending request, incl. the caller's task (bytes)": (heap1 - heap0) / m,
    }


# --- main ------------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict:
    ctx = mp.get_context("spawn")
    ports: mp.Queue = ctx.Queue()
    sender = ctx.Process(target=_sender, args=(ports,), daemon=True)
    sender.start()
    try:
        url = f"ws://127.0.0.1:{ports.get(timeout=30)}/"
        with tempfile.TemporaryDirectory() as tmp:
            rec = os.path.join(tmp, "rec.jsonl")
            variants = {
                "bare recv": lambda: bare_recv(url, args.messages),
                "bare recv (bytes)": lambda: bare_recv(url, args.messages, decode=False),
                "bare recv+decode": lambda: bare_decode(url, args.messages),
                "feeder Client": lambda: feeder_client(url, args.messages),
                "feeder Client+rec": lambda: feeder_client(url, args.messages, rec),
            }
            samples: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
            for _ in range(args.rounds):
                for name, variant in variants.items():
                    samples[name].append(await variant())
                    if os.path.exists(rec):
                        os.unlink(rec)
        memory = {**await memory_idle(url, args.connections), **await memory_pending(url, args.pending)}
    finally:
        sender.kill()
        sender.join()
    wall = {name: statistics.median(s[0] for s in runs) for name, runs in samples.items()}
    cpu = {name: statistics.median(s[1] for s in runs) for name, runs in samples.items()}
    return {
        "messages": args.messages,
        "rounds": args.rounds,
        "samples": samples,
        "wall_msgs_per_s": wall,
        "cpu_msgs_per_s": cpu,
        "ratio_vs_bare_recv": {name: wall[name] / wall["bare recv"] for name in wall},
        "memory": memory,
    }


def print_table(result: dict) -> None:
    wall, cpu = result["wall_msgs_per_s"], result["cpu_msgs_per_s"]
    print(f"receive path, {result['messages']} messages x {result['rounds']} rounds (medians), uvloop")
    print(f"{'variant':<20}{'msgs/s wall':>13}{'msgs/CPU-s':>13}{'wall vs bare':>14}{'CPU vs bare':>13}")
    for name in wall:
        print(
            f"{name:<20}{wall[name]:>13,.0f}{cpu[name]:>13,.0f}"
            f"{wall[name] / wall['bare recv']:>14.2f}{cpu[name] / cpu['bare recv']:>13.2f}"
        )
    print()
    for name, value in result["memory"].items():
        print(f"{name:<68}{value:>12,.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=200, help="idle connections for the memory test")
    parser.add_argument("--pending", type=int, default=10_000, help="pending requests for the memory test")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args()
    if args.messages % 1000:
        sys.exit("--messages must be a multiple of 1000")
    result = uvloop.run(run(args))
    print_table(result)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
