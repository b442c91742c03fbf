"""Benchmark the exchange simulator: book updates/s delivered to a raw websockets client, and RSS.

Each scenario starts a fresh simulator (its own process, rate limits off) and one receiver process
that subscribes and counts frames, so the simulator, the receiver and this script each get their
own process. Side by side, at the same total rate:

  raw x1       1 instrument,    book.{inst}.raw       (the baseline of the ratios)
  raw x1 ws    the same, received by a websockets client instead of a bare socket
  raw x1 cf    the same, received by cryptofeed's Deribit feed, unchanged (over TLS)
  raw x10      10 instruments,  raw
  raw x100     100 instruments, raw
  raw x1000    1000 instruments, raw
  100ms x1     1 instrument,    book.{inst}.100ms     (aggregated: ~10 messages/s)
  max x1       1 instrument,    raw, rate far above what one core can do (capacity)
  chain x1000  Deribit's full option chain (~1,140 listed), the first 1,000 instruments moving,
               book.{inst}.raw on all of them, at --chain-rate (5,000/s: what the feeder's chain
               benchmark asks for)
  chain x1000 t  the same plus ticker.{inst}.100ms on all 1,000 (greeks and IVs: the option model)
  chain x2000  2,000 instruments (the full chain and further strikes), book raw, at --chain-rate

Three receivers: a bare socket that does the handshake itself and counts frames by their headers
(so it measures the simulator, not a Python client's per-message cost), a plain `websockets`
asyncio client (ws.recv per message), and cryptofeed (book callbacks; proves it works unchanged).

Reported per scenario: updates/s the simulator generated, book messages/s the receiver got, the
simulator's CPU time per update (µs, from its own process times: robust on a loaded machine), the
capacity that implies for one core (1e6 / µs), shortfall it counted (`lagged`), and its RSS.
`--soak SECONDS` adds an RSS-over-time run (the issue asks for 10 minutes flat: --soak 600).

    python scripts/bench_sim.py [--rate 50000] [--seconds 10] [--soak 0] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import psutil

from feeder.sim import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, SimServer

RECEIVER = r"""
import asyncio, json, sys, time
import websockets

async def main(url, channels, seconds):
    async with websockets.connect(url, max_size=None, compression=None, ping_interval=None) as ws:
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "public/auth", "params": {
            "grant_type": "client_credentials", "client_id": sys.argv[4], "client_secret": sys.argv[5]}}))
        await ws.recv()
        for i in range(0, len(channels), 500):
            await ws.send(json.dumps({"jsonrpc": "2.0", "id": 2 + i, "method": "public/subscribe",
                                      "params": {"channels": channels[i:i + 500]}}))
        print("subscribed", flush=True)
        frames = nbytes = 0
        closed = False
        start = time.monotonic()
        end = start + seconds
        while time.monotonic() < end:
            try:
                msg = await asyncio.wait_for(ws.recv(decode=False), end - time.monotonic())
            except (asyncio.TimeoutError, TimeoutError):
                break
            except websockets.ConnectionClosed:  # too slow: the simulator reset it (slow consumer)
                closed = True
                break
            frames += 1
            nbytes += len(msg)
        elapsed = time.monotonic() - start
        print(json.dumps({"frames": frames, "bytes": nbytes, "seconds": elapsed, "closed": closed}), flush=True)

asyncio.run(main(sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3])))
"""

# The same job on a bare socket: a hand-made handshake, then frames counted by their headers only,
# so the number measures the simulator rather than a Python WebSocket client's per-message cost.
SOCKET_RECEIVER = r"""
import base64, json, os, socket, sys, time

def frame(obj):
    data = json.dumps(obj).encode()
    n = len(data)
    size = bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big")
    return b"\x81" + size + b"\0\0\0\0" + data  # masked with a zero key

url, channels, seconds = sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3])
host, _, rest = url.removeprefix("ws://").partition(":")
port, path = int(rest.split("/", 1)[0]), "/" + rest.split("/", 1)[1]
sock = socket.create_connection((host, port))
key = base64.b64encode(os.urandom(16)).decode()
sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
              f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
head = b""
while b"\r\n\r\n" not in head:
    head += sock.recv(65536)
head, _, buf = head.partition(b"\r\n\r\n")
assert b" 101 " in head.split(b"\r\n")[0], head
sock.sendall(frame({"jsonrpc": "2.0", "id": 1, "method": "public/auth", "params": {
    "grant_type": "client_credentials", "client_id": sys.argv[4], "client_secret": sys.argv[5]}}))
for i in range(0, len(channels), 500):
    sock.sendall(frame({"jsonrpc": "2.0", "id": 2 + i, "method": "public/subscribe",
                        "params": {"channels": channels[i:i + 500]}}))
print("subscribed", flush=True)
buf = bytearray(buf)
frames = nbytes = pos = 0
sock.settimeout(0.2)
start = time.monotonic()
end = start + seconds
while time.monotonic() < end:
    try:
        chunk = sock.recv(1 << 20)
    except TimeoutError:
        continue
    if not chunk:
        break
    buf += chunk
    size = len(buf)
    while size - pos >= 2:
        n, hl = buf[pos + 1] & 0x7F, 2
        if n == 126:
            if size - pos < 4:
                break
            n, hl = int.from_bytes(buf[pos + 2:pos + 4], "big"), 4
        elif n == 127:
            if size - pos < 10:
                break
            n, hl = int.from_bytes(buf[pos + 2:pos + 10], "big"), 10
        if size - pos < hl + n:
            break
        frames += 1
        nbytes += n
        pos += hl + n
    del buf[:pos]
    pos = 0
print(json.dumps({"frames": frames, "bytes": nbytes, "seconds": time.monotonic() - start}), flush=True)
"""
# cryptofeed, unchanged, pointed at the simulator (TLS: it only accepts wss://): counts L2 book
# callbacks, so this row also proves a third-party Deribit client works against the simulator.
CRYPTOFEED_RECEIVER = r"""
import asyncio, json, sys, time
from cryptofeed import FeedHandler
from cryptofeed.connection import RestEndpoint, Routes, WebsocketEndpoint
from cryptofeed.defines import L2_BOOK
from cryptofeed.exchanges import Deribit

url, seconds = sys.argv[1], float(sys.argv[3])
base = url.replace("wss://", "https://").split("/ws/")[0]
Deribit.websocket_endpoints = [WebsocketEndpoint(url)]
Deribit.rest_endpoints = [RestEndpoint(base, routes=Routes(
    [f"/api/v2/public/get_instruments?currency={c}" for c in ("BTC", "ETH", "USDC", "SOL")]))]
state = {"frames": 0, "start": None}

async def book(update, receipt):
    if state["start"] is None:
        state["start"] = time.monotonic()
        print("subscribed", flush=True)
    else:
        state["frames"] += 1

handler = FeedHandler()  # installs its event loop policy: make the loop after it
loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)
keys = {"deribit": {"key_id": sys.argv[4], "key_secret": sys.argv[5]}}
handler.add_feed(Deribit(symbols=["BTC-USD-PERP"], channels=[L2_BOOK], callbacks={L2_BOOK: book}, config=keys))
handler.run(start_loop=False)

async def finish():
    while state["start"] is None:
        await asyncio.sleep(0.05)
    await asyncio.sleep(seconds)
    elapsed = time.monotonic() - state["start"]
    print(json.dumps({"frames": state["frames"], "bytes": 0, "seconds": elapsed}), flush=True)
    loop.stop()

loop.create_task(finish())
loop.run_forever()
"""
RECEIVERS = {"websockets": RECEIVER, "socket": SOCKET_RECEIVER, "cryptofeed": CRYPTOFEED_RECEIVER}


def run_scenario(
    name: str, instruments: int, interval: str, receiver_kind: str, rate: float, seconds: float,
    chain: bool = False, tickers: bool = False,
) -> dict:  # fmt: skip
    tls = receiver_kind == "cryptofeed"
    full = {"option_expiries": None, "option_strikes": None} if chain else {}
    with SimServer(instruments=instruments, rate=0, rate_limits=False, seed=1, tls=tls, **full) as sim:
        names = sim.info()["active"]
        channels = [f"book.{n}.{interval}" for n in names]
        if tickers:
            channels += [f"ticker.{n}.100ms" for n in names]
        env = (
            {**os.environ, "SSL_CERT_FILE": sim.tls_cert, "REQUESTS_CA_BUNDLE": sim.tls_cert} if tls else None
        )
        receiver = subprocess.Popen(
            [sys.executable, "-c", RECEIVERS[receiver_kind], sim.ws_url, json.dumps(channels), str(seconds),
             DEMO_CLIENT_ID, DEMO_CLIENT_SECRET],
            stdout=subprocess.PIPE, text=True, env=env, cwd=tempfile.gettempdir(),  # cryptofeed writes a log
        )  # fmt: skip
        try:
            assert receiver.stdout is not None
            receiver.stdout.readline()  # subscribed
            proc = psutil.Process(sim.pid)
            before, cpu0, t0 = sim.stats(), proc.cpu_times(), time.monotonic()
            sim.set_rate(rate)
            result = json.loads(receiver.stdout.readline())
            after, cpu1, t1 = sim.stats(), proc.cpu_times(), time.monotonic()
            sim.set_rate(0)
            rss = proc.memory_info().rss
        finally:
            receiver.kill()
            receiver.wait()
    updates = after["changes_total"] - before["changes_total"]
    notifications = sum(after["published"].values()) - sum(before["published"].values())
    cpu = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    us_per_update = 1e6 * cpu / updates if updates else float("nan")
    return {
        "scenario": name,
        "instruments": instruments,
        "interval": interval,
        "receiver": receiver_kind,
        "rate": rate,
        "generated_per_s": updates / (t1 - t0),
        "received_per_s": result["frames"] / result["seconds"],
        "notifications_per_s": notifications / (t1 - t0),
        "received_mb_per_s": result["bytes"] / result["seconds"] / 1e6,
        "sim_cpu_us_per_update": us_per_update,
        "capacity_per_core": 1e6 / us_per_update if updates else 0.0,
        "lagged": after["lagged_updates"] - before["lagged_updates"],
        "receiver_reset": result.get("closed", False) or after["counters"].get("slow_consumer_resets", 0) > 0,
        "rss_mb": rss / 1e6,
    }


def soak(rate: float, seconds: float) -> dict:
    """RSS of the simulator sampled every second at `rate` with a receiver on a raw channel."""
    with SimServer(instruments=["BTC-PERPETUAL"], rate=0, rate_limits=False) as sim:
        channels = json.dumps(["book.BTC-PERPETUAL.raw"])
        receiver = subprocess.Popen(
            [sys.executable, "-c", SOCKET_RECEIVER, sim.ws_url, channels, str(seconds + 5),
             DEMO_CLIENT_ID, DEMO_CLIENT_SECRET],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert receiver.stdout is not None
            receiver.stdout.readline()
            proc = psutil.Process(sim.pid)
            sim.set_rate(rate)
            samples = []
            start = time.monotonic()
            while (elapsed := time.monotonic() - start) < seconds:
                samples.append((elapsed, proc.memory_info().rss / 1e6))
                time.sleep(1.0)
            changes = sim.stats()["changes_total"]
        finally:
            receiver.kill()
            receiver.wait()
    warm = [s for s in samples if s[0] >= min(30.0, seconds / 3)] or samples
    slope = (warm[-1][1] - warm[0][1]) / max(1e-9, warm[-1][0] - warm[0][0]) * 60
    return {
        "seconds": seconds,
        "rate": rate,
        "changes": changes,
        "rss_first_mb": samples[0][1],
        "rss_warm_mb": warm[0][1],
        "rss_last_mb": samples[-1][1],
        "rss_max_mb": max(s[1] for s in samples),
        "rss_slope_mb_per_min_after_warmup": slope,
    }


SCENARIOS = [
    ("raw x1", 1, "raw", "socket"),
    ("raw x1 ws", 1, "raw", "websockets"),
    ("raw x1 cf", 1, "raw", "cryptofeed"),
    ("raw x10", 10, "raw", "socket"),
    ("raw x100", 100, "raw", "socket"),
    ("raw x1000", 1000, "raw", "socket"),
    ("100ms x1", 1, "100ms", "socket"),
]
CHAIN_SCENARIOS = [  # (name, instruments, with tickers): at --chain-rate
    ("chain x1000", 1000, False),
    ("chain x1000 t", 1000, True),
    ("chain x2000", 2000, False),
]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=50_000.0, help="book updates/s across instruments")
    p.add_argument("--chain-rate", type=float, default=5_000.0, help="book updates/s of the chain scenarios")
    p.add_argument("--seconds", type=float, default=10.0, help="measurement per scenario")
    p.add_argument("--soak", type=float, default=0.0, help="seconds of RSS sampling (0: skip)")
    p.add_argument("--only", default=None, help="run only scenarios whose name contains this")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = p.parse_args()
    load = psutil.getloadavg()
    rows = [
        run_scenario(name, count, interval, kind, args.rate, args.seconds)
        for name, count, interval, kind in SCENARIOS
        if args.only is None or args.only in name
    ]
    if args.only is None or args.only in "max x1":
        rows.append(run_scenario("max x1", 1, "raw", "socket", 1_000_000.0, args.seconds))
    rows += [
        run_scenario(name, count, "raw", "socket", args.chain_rate, args.seconds, chain=True, tickers=tickers)
        for name, count, tickers in CHAIN_SCENARIOS
        if args.only is None or args.only in name
    ]
    out = {"load_before": load, "load_after": psutil.getloadavg(), "cpus": psutil.cpu_count(), "rows": rows}
    if args.soak:
        out["soak"] = soak(args.rate, args.soak)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print_table(out)
    return 0


def print_table(out: dict) -> None:
    rows = out["rows"]
    base = rows[0]["capacity_per_core"] if rows else 1.0
    print(f"load average {out['load_before'][0]:.2f} -> {out['load_after'][0]:.2f} on {out['cpus']} cpus")
    head = (
        f"{'scenario':13} {'rate':>9} {'generated/s':>12} {'received/s':>11} {'notes/s':>9} {'MB/s':>6} "
        f"{'cpu us/upd':>10} {'capacity/core':>13} {'ratio':>6} {'lagged':>9} {'rss MB':>7}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['scenario']:13} {r['rate']:>9,.0f} {r['generated_per_s']:>12,.0f} {r['received_per_s']:>11,.0f} "
            f"{r['notifications_per_s']:>9,.0f} "
            f"{r['received_mb_per_s']:>6.1f} {r['sim_cpu_us_per_update']:>10.2f} {r['capacity_per_core']:>13,.0f} "
            f"{r['capacity_per_core'] / base:>6.2f} {r['lagged']:>9,} {r['rss_mb']:>7.1f}"
            + ("  (receiver too slow: reset as a slow consumer)" if r["receiver_reset"] else "")
        )
    if "soak" in out:
        s = out["soak"]
        print(
            f"\nsoak {s['seconds']:.0f} s at {s['rate']:,.0f}/s ({s['changes']:,} changes): RSS first "
            f"{s['rss_first_mb']:.1f} MB, after warm-up {s['rss_warm_mb']:.1f}, last {s['rss_last_mb']:.1f}, "
            f"max {s['rss_max_mb']:.1f}; slope after warm-up {s['rss_slope_mb_per_min_after_warmup']:+.2f} MB/min"
        )


if __name__ == "__main__":
    sys.exit(main())
