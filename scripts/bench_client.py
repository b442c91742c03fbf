"""Benchmark the connection client: receive path, CPU at fixed rates and idle, liveness, memory.

A sender process (a plain websockets server on uvloop) writes pre-framed Deribit-like book
notifications to its socket; this process, on uvloop, receives them. Side by side in one run:

1. Throughput (the sender writes N messages as fast as the kernel takes them; the receiver is the
   bottleneck). Each variant decodes every message with orjson and calls a handler, except the
   first (the idiomatic websockets loop, the usual yardstick):
   - websockets recv:          `await ws.recv()` in a loop, nothing else
   - websockets recv+decode:   the same, plus orjson.loads and the handler
   - subclass (before):        websockets' asyncio ClientConnection with `process_event` overridden to
                               dispatch each frame inside data_received (the client's transport until
                               this change)
   - Sans-I/O link:            websockets' ClientProtocol driven from our asyncio.Protocol (link_websockets)
   - picows link:              picows (link_picows)
   - Client (websockets/picows): the whole feeder Client (heartbeat off), on each link
   - Client+rec (picows):      with record_to (the background recorder's cost on the receive path)
   (On loopback the sender's process pays for the whole TCP path, so the receiver's numbers here are
   its own: parsing, dispatch, wake-ups.)
   Rounds are interleaved; medians of msgs per wall second, and µs of this process's CPU per message.
2. CPU at a fixed rate: the sender paces 1,000 and 10,000 msgs/s (one write per ms tick); CPU per
   message of the receiving Client on each link, beside the websockets recv+decode loop; and the
   Client's CPU per second when idle, active liveness on (the default: a ping per 0.5 s of silence)
   and off. A ping is a write of this process: on loopback that write also pays the kernel's TCP path
   of both ends.
3. Liveness: a Feed (Client + Deribit adapter + rings) on the simulator at 400 updates/s, a `stall`
   fault (TCP up, nothing sent, pings unanswered; and again with `pongs`: pings answered, the exchange
   behind them hung), and the time from the fault to the GAP record on every book ring, as a ring
   reader sees it (median and max over --stalls).
4. Memory per idle connection and per pending request.

    python scripts/bench_client.py [--messages 200000] [--rounds 5] [--seconds 5] [--stalls 5] [--json out.json]
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
from collections.abc import Callable
from typing import Any

import orjson
import psutil
import uvloop
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.frames import Frame, Opcode

from feeder.client import Client, ClientConfig
from feeder.client.link_websockets import open_websocket
from feeder.client.transport import picows_installed

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
ENGINES = ["websockets", *(["picows"] if picows_installed() else [])]


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
    one = _ws_frame(FRAME)
    blob = one * 1000

    async def flood(ws, n: int) -> None:
        for _ in range(n // 1000):
            ws.transport.write(blob)
            await ws.drain()  # flow control: wait while the kernel buffer is full

    async def pace(ws, rate: int, seconds: float) -> None:
        start, sent, total = time.monotonic(), 0, int(rate * seconds)
        while sent < total:
            due = min(total, int((time.monotonic() - start) * rate) + 1)
            for _ in range(due - sent):
                ws.transport.write(one)
            sent = due
            await asyncio.sleep(0.001)

    async def handler(ws):
        async for msg in ws:
            words = (msg if isinstance(msg, str) else msg.decode()).split()
            if words[0] == "go":
                await flood(ws, int(words[1]))
            elif words[0] == "pace":
                await pace(ws, int(words[1]), float(words[2]))
            # anything else (JSON-RPC requests) is never answered: that is the pending-request test

    async with websockets.serve(
        handler, "127.0.0.1", 0, max_size=None, ping_interval=None, compression=None
    ) as srv:
        port_out.put(srv.sockets[0].getsockname()[1])
        await asyncio.Future()


def _sender(port_out: mp.Queue) -> None:
    uvloop.run(_serve(port_out))


# --- throughput ------------------------------------------------------------------------------------


class Counter:
    """A handler that counts, with wall and CPU time from the first message to the n-th."""

    def __init__(self, n: int):
        self.n, self.count = n, 0
        self.done = asyncio.get_running_loop().create_future()

    def __call__(self, _msg: Any = None, _recv_ns: int = 0) -> None:
        self.count += 1
        if self.count == 1:
            self.wall, self.cpu = time.perf_counter(), time.process_time()
        elif self.count == self.n and not self.done.done():
            wall, cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu
            self.done.set_result(((self.n - 1) / wall, 1e6 * cpu / (self.n - 1)))


def _decoding(counter: Counter) -> Callable[[bytes, int], None]:
    loads, time_ns = orjson.loads, time.time_ns

    def on_message(data: bytes, recv_ns: int = 0) -> None:
        msg = loads(data)
        if "id" not in msg:
            counter(msg, recv_ns or time_ns())

    return on_message


def _connect(url: str, **kwargs: Any):
    return websockets.connect(url, max_size=None, ping_interval=None, compression=None, **kwargs)


async def recv_loop(url: str, n: int, decode: bool) -> tuple[float, float]:
    counter = Counter(n)
    handle = _decoding(counter)
    async with _connect(url) as ws:
        await ws.send(f"go {n}")
        recv = ws.recv
        for _ in range(n):
            data = await recv(False) if decode else await recv()
            handle(data) if decode else counter()
        return await counter.done


class _Subclass(ClientConnection):
    """The client's transport before this change: websockets' asyncio driver, process_event overridden."""

    def __init__(self, protocol: Any, *, dispatch: Callable[[bytes], None], **kwargs: Any):
        super().__init__(protocol, **kwargs)
        self.dispatch = dispatch

    def process_event(self, event: Any) -> None:
        if type(event) is Frame and event.opcode in (Opcode.TEXT, Opcode.BINARY) and event.fin:
            self.dispatch(event.data)
            return
        super().process_event(event)


async def subclass(url: str, n: int) -> tuple[float, float]:
    counter = Counter(n)
    factory = lambda protocol, **kw: _Subclass(protocol, dispatch=_decoding(counter), **kw)  # noqa: E731
    async with _connect(url, create_connection=factory) as ws:
        await ws.send(f"go {n}")
        return await counter.done


async def sansio_link(url: str, n: int) -> tuple[float, float]:
    counter = Counter(n)
    config = ClientConfig(url=url, heartbeat="none", max_frame_size=1 << 20)
    link = await open_websocket(config, _decoding(counter), lambda _p: None, lambda _e: None)
    link.send_text(f"go {n}".encode())
    try:
        return await counter.done
    finally:
        link.close()
        await link.wait_closed()


async def picows_link(url: str, n: int) -> tuple[float, float]:
    from feeder.client.link_picows import open_picows

    counter = Counter(n)
    config = ClientConfig(url=url, heartbeat="none", max_frame_size=1 << 20, transport="picows")
    link = await open_picows(config, _decoding(counter), lambda _p: None, lambda _e: None)
    link.send_text(f"go {n}".encode())
    try:
        return await counter.done
    finally:
        link.close()
        await link.wait_closed()


async def feeder_client(url: str, n: int, engine: str, record_to: str | None = None) -> tuple[float, float]:
    counter = Counter(n)
    config = ClientConfig(
        url=url, heartbeat="none", record_to=record_to, max_frame_size=1 << 20, transport=engine
    )
    client = Client(config, on_notification=counter)
    await client.connect()
    try:
        await client.send(f"go {n}")
        return await counter.done
    finally:
        await client.close(timeout=2.0)


async def throughput(url: str, args: argparse.Namespace, tmp: str) -> dict[str, list]:
    rec = os.path.join(tmp, "rec.jsonl")
    n = args.messages
    variants: dict[str, Callable[[], Any]] = {
        "websockets recv": lambda: recv_loop(url, n, decode=False),
        "websockets recv+decode": lambda: recv_loop(url, n, decode=True),
        "subclass (before)": lambda: subclass(url, n),
        "Sans-I/O link": lambda: sansio_link(url, n),
    }
    if "picows" in ENGINES:
        variants["picows link"] = lambda: picows_link(url, n)
    for engine in ENGINES:
        variants[f"Client ({engine})"] = lambda e=engine: feeder_client(url, n, e)
    variants[f"Client+rec ({ENGINES[-1]})"] = lambda: feeder_client(url, n, ENGINES[-1], rec)
    samples: dict[str, list] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, variant in variants.items():
            samples[name].append(await variant())
            if os.path.exists(rec):
                os.unlink(rec)
    return samples


# --- CPU at fixed rates and idle -------------------------------------------------------------------


async def paced(url: str, variant: str, rate: int, seconds: float) -> float:
    """µs of this process's CPU per message while `variant` receives `rate` msgs/s."""
    total = int(rate * seconds)
    counter = Counter(total)
    if variant == "websockets recv+decode":
        handle = _decoding(counter)
        async with _connect(url) as ws:
            cpu0 = time.process_time()
            await ws.send(f"pace {rate} {seconds}")
            for _ in range(total):
                handle(await ws.recv(False))
            return 1e6 * (time.process_time() - cpu0) / total
    engine = variant.split("(")[1].rstrip(")")
    config = ClientConfig(url=url, heartbeat="binance", transport=engine, max_frame_size=1 << 20)
    client = Client(config, on_notification=counter)
    await client.connect()
    try:
        cpu0 = time.process_time()
        await client.send(f"pace {rate} {seconds}")
        await asyncio.wait_for(counter.done, seconds * 4 + 10)
        return 1e6 * (time.process_time() - cpu0) / total
    finally:
        await client.close(timeout=2.0)


async def idle(url: str, engine: str, seconds: float, probes: bool) -> tuple[float, int]:
    """(µs of CPU per second, probes sent) of a connected Client with no traffic."""
    config = ClientConfig(url=url, heartbeat="binance", transport=engine)
    if not probes:
        config = ClientConfig(url=url, heartbeat="binance", transport=engine, liveness_interval=None)
    client = Client(config)
    await client.connect()
    try:
        await asyncio.sleep(0.5)
        cpu0, wall0, sent0 = time.process_time(), time.monotonic(), client.heartbeat_health()["probes_sent"]
        await asyncio.sleep(seconds)
        wall = time.monotonic() - wall0
        per_s = 1e6 * (time.process_time() - cpu0) / wall
        return per_s, (client.heartbeat_health()["probes_sent"] - sent0) / wall
    finally:
        await client.close(timeout=2.0)


async def rates(url: str, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    variants = ["websockets recv+decode", *(f"Client ({e})" for e in ENGINES)]
    for _ in range(args.rounds_cpu):
        for rate in (1000, 10000):
            for variant in variants:
                key = f"{variant}: µs CPU per message at {rate}/s"
                out.setdefault(key, []).append(await paced(url, variant, rate, args.seconds))
        for engine in ENGINES:
            for probes in (True, False):
                per_s, probe_rate = await idle(url, engine, args.seconds, probes)
                key = f"Client ({engine}): µs CPU per second idle, probes {'on' if probes else 'off'}"
                out.setdefault(key, []).append(per_s)
                if probes:
                    out.setdefault(f"Client ({engine}): probes per second idle", []).append(probe_rate)
    return out


# --- liveness --------------------------------------------------------------------------------------


async def stall_to_gap(stalls: int, engine: str, pongs: bool) -> list[float]:
    """Seconds from a stall fault to the GAP record on every book ring, per stall."""
    from feeder.exchanges.deribit.session import SessionConfig
    from feeder.ring import GAP, RingReader
    from feeder.runtime.feed import Feed, FeedConfig
    from feeder.sim import SimServer

    times = []
    with SimServer(instruments=["BTC-PERPETUAL", "ETH-PERPETUAL"], rate=400, seed=7) as sim:
        client = ClientConfig(url=sim.ws_url, heartbeat="deribit", transport=engine, initial_delay=0.05)
        config = FeedConfig(client=client, rings=("book.BTC", "book.ETH"), session=SessionConfig())
        async with Feed(config) as feed:
            readers = [RingReader(ring) for ring in config.rings]
            try:
                for _ in range(stalls):
                    while feed.client.state.value != "connected" or not all(len(r.read()) for r in readers):
                        await asyncio.sleep(0.05)
                    await asyncio.sleep(
                        2.5 if pongs else 0.3
                    )  # steady 2 s: then its quiet is worth a public/test
                    for r in readers:
                        r.read()
                    conn = (await asyncio.to_thread(sim.connections))[0]["id"]
                    start = time.monotonic()
                    await asyncio.to_thread(sim.fault, "stall", conn=conn, pongs=pongs)
                    gapped: set[int] = set()
                    while len(gapped) < len(readers):
                        for i, r in enumerate(readers):
                            recs = r.read()
                            if len(recs) and (recs["flags"] & GAP).any():
                                gapped.add(i)
                        await asyncio.sleep(0.001)
                    times.append(time.monotonic() - start)
                    await asyncio.sleep(0.5)
            finally:
                for r in readers:
                    r.close()
    return times


# --- memory ----------------------------------------------------------------------------------------


def _rss() -> int:
    gc.collect()
    return psutil.Process().memory_info().rss


async def memory_idle(url: str, k: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in ["bare websockets", *(f"Client ({e})" for e in ENGINES)]:
        tracemalloc.start()
        rss0, heap0 = _rss(), tracemalloc.get_traced_memory()[0]
        if name == "bare websockets":
            conns = [await websockets.connect(url, ping_interval=None, compression=None) for _ in range(k)]
        else:
            engine = name.split("(")[1].rstrip(")")
            conns = [Client(ClientConfig(url=url, heartbeat="none", transport=engine)) for _ in range(k)]
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
            samples = await throughput(url, args, tmp)
        cpu = await rates(url, args)
        memory = {**await memory_idle(url, args.connections), **await memory_pending(url, args.pending)}
    finally:
        sender.kill()
        sender.join()
    liveness = {
        f"{engine}{', pongs answered' if pongs else ''}": await stall_to_gap(args.stalls, engine, pongs)
        for engine in ENGINES
        for pongs in (False, True)
    }
    wall = {name: statistics.median(s[0] for s in runs) for name, runs in samples.items()}
    us = {name: statistics.median(s[1] for s in runs) for name, runs in samples.items()}
    return {
        "messages": args.messages,
        "rounds": args.rounds,
        "samples": samples,
        "wall_msgs_per_s": wall,
        "cpu_us_per_msg": us,
        "ratio_vs_websockets_recv": {name: wall[name] / wall["websockets recv"] for name in wall},
        "cpu_at_rates": {k: statistics.median(v) for k, v in cpu.items()},
        "cpu_samples": cpu,
        "stall_to_gap_s": liveness,
        "memory": memory,
    }


def print_table(result: dict) -> None:
    wall, us = result["wall_msgs_per_s"], result["cpu_us_per_msg"]
    print(f"receive path, {result['messages']} messages x {result['rounds']} rounds (medians), uvloop")
    print(f"{'variant':<26}{'msgs/s wall':>13}{'µs CPU/msg':>12}{'wall vs recv':>14}")
    for name in wall:
        print(f"{name:<26}{wall[name]:>13,.0f}{us[name]:>12.2f}{wall[name] / wall['websockets recv']:>14.2f}")
    print()
    for name, value in result["cpu_at_rates"].items():
        print(f"{name:<60}{value:>12,.2f}")
    print()
    for engine, times in result["stall_to_gap_s"].items():
        print(
            f"stall → GAP on every book ({engine}, {len(times)} stalls): "
            f"median {statistics.median(times):.3f} s, max {max(times):.3f} s"
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
    parser.add_argument("--rounds-cpu", type=int, default=3, help="rounds of the fixed-rate and idle runs")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each fixed-rate and idle run")
    parser.add_argument("--stalls", type=int, default=5, help="stall faults per engine for the liveness run")
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
