"""Rings over NATS, measured side by side with a bare nats-py publish/subscribe loop of the same payload.

    python scripts/bench_mirror.py [--quick] [--repeat 3] [--json out.json]

One run starts a real nats-server on loopback (JetStream off: the live path) and, per phase, fresh
processes on this machine:
- feeder path: a writer publishing book records (384 bytes) into a source ring at a fixed rate, `feeder
  mirror`, `feeder replicate`. Added latency is the replica's own figure: when it wrote a record into its
  ring minus the record's `ts_publish` on the source ring (same host, same clock), p50 and p99 over the
  phase; CPU per record is each process's CPU time over the phase divided by the records it carried.
- baseline: a nats-py publisher sending one 384-byte message per record at the same rate (the send time
  in its first 8 bytes) and a nats-py subscriber taking them: latency receive - send, CPU per message.
Rates: 1,000 and 10,000 records/s, then a ladder of higher rates with the writer publishing in batches
(1 ms worth at a time) to find the highest rate the replica sustains (every record arrives, none lost).
Each phase is repeated (`--repeat`); medians are reported, and ratios feeder / baseline.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from feeder.bridge.natsserver import NatsServer  # noqa: E402
from feeder.bridge.status import read_status  # noqa: E402
from feeder.ring import RingReader, RingWriter  # noqa: E402

PAYLOAD = 384
LADDER = (20_000, 50_000, 100_000, 200_000, 400_000)


# --- child processes ---------------------------------------------------------------------------------


def _pace(rate: float, seconds: float, batch: int, step) -> int:
    """Call step(n, batch) at `rate` records/s for `seconds`; returns records sent."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None).prctl(29, 1000, 0, 0, 0)  # 1 us timer slack: sleeps end on time
    began, n = time.monotonic(), 0
    while time.monotonic() - began < seconds:
        step(n, batch)
        n += batch
        delay = began + n / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    return n


def writer_main(instance: str, rate: float, seconds: float, batch: int) -> None:
    with RingWriter.create("book.BTC", "book", 1 << 17, instance=instance) as writer:
        records = np.zeros(batch, writer.dtype)
        records["bid_count"] = records["ask_count"] = 10
        print("ready", flush=True)
        sys.stdin.readline()
        sent = _pace(
            rate,
            seconds,
            batch,
            lambda n, b: writer.publish_batch(records) if b > 1 else writer.publish(records),
        )
        print(json.dumps({"sent": sent}), flush=True)
        sys.stdin.readline()  # keep the ring until the replica has drained it


def bare_pub_main(url: str, rate: float, seconds: float) -> None:
    import asyncio

    import nats

    async def main() -> None:
        nc = await nats.connect(url)
        payload = bytearray(PAYLOAD)
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        began, n = time.monotonic(), 0
        while time.monotonic() - began < seconds:
            payload[:8] = time.time_ns().to_bytes(8, "little")
            await nc.publish("bench.bare", bytes(payload))
            n += 1
            delay = began + n / rate - time.monotonic()
            await asyncio.sleep(0)
            if delay > 0:
                time.sleep(delay)  # the same pacing as the ring writer, not the event loop's 1 ms timers
        await nc.flush()
        print(json.dumps({"sent": n}), flush=True)
        await nc.close()

    asyncio.run(main())


def bare_sub_main(url: str) -> None:
    import asyncio

    import nats
    import uvloop

    async def main() -> None:
        nc = await nats.connect(url)
        lags: list[int] = []
        done = asyncio.Event()

        async def take(msg) -> None:
            lags.append(time.time_ns() - int.from_bytes(msg.data[:8], "little"))

        await nc.subscribe("bench.bare", cb=take, pending_msgs_limit=-1, pending_bytes_limit=-1)
        await nc.flush()
        loop = asyncio.get_running_loop()
        loop.add_reader(sys.stdin.fileno(), done.set)
        print("ready", flush=True)
        await done.wait()
        sys.stdin.readline()
        await asyncio.sleep(0.5)
        arr = np.array(lags, np.float64) / 1e3
        out = {"received": len(lags)}
        if len(lags):
            out.update(p50=float(np.percentile(arr, 50)), p99=float(np.percentile(arr, 99)))
        print(json.dumps(out), flush=True)
        await nc.close()

    uvloop.run(main())


# --- the parent ----------------------------------------------------------------------------------------


class Child:
    def __init__(self, argv: list[str], env: dict | None = None, stdout=subprocess.PIPE):
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=stdout, stderr=subprocess.DEVNULL, text=True,
            env={**os.environ, **(env or {})}, start_new_session=True,
        )  # fmt: skip
        self.ps = psutil.Process(self.proc.pid)

    def line(self) -> str:
        return self.proc.stdout.readline().strip()

    def tell(self) -> None:
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()

    def cpu(self) -> float:
        t = self.ps.cpu_times()
        return t.user + t.system

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def _py(*code: str) -> list[str]:
    return [
        sys.executable,
        "-c",
        f"import sys; sys.path.insert(0, {str(ROOT / 'scripts')!r}); " + "; ".join(code),
    ]


def _wait(what, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        time.sleep(0.02)


def feeder_phase(url: str, rate: float, seconds: float, batch: int) -> dict:
    tag = f"b{os.getpid()}{int(time.monotonic() * 1e3) % 100000}"
    src, dst = f"{tag}s", f"{tag}r"
    writer = Child(
        _py(f"from bench_mirror import writer_main; writer_main({src!r}, {rate}, {seconds}, {batch})")
    )
    children = [writer]
    try:
        assert writer.line() == "ready"
        feeder = [sys.executable, "-m", "feeder"]
        mirror = Child(
            [*feeder, "mirror", "--nats", url, "--instance", src, "--log-level", "error"],
            stdout=subprocess.DEVNULL,
        )
        replica = Child(
            [*feeder, "replicate", "--nats", url, "--instance", dst, "--source", src, "--log-level", "error"],
            stdout=subprocess.DEVNULL,
        )
        children += [mirror, replica]
        _wait(lambda: _figures("replica", dst) is not None and _figures("mirror", src) is not None)
        cpu0 = mirror.cpu(), replica.cpu()
        base_m = _figures("mirror", src)["records"]
        base_r = _figures("replica", dst)["records"]
        writer.tell()
        sent = json.loads(writer.line())["sent"]
        with RingReader("book.BTC", instance=src) as reader:
            target = reader.write_seq
        with contextlib.suppress(RuntimeError):
            _wait(lambda: (_ring(dst) or 0) >= target, timeout=10)
        cpu1 = mirror.cpu(), replica.cpu()
        replica.close()  # each writes its final status file as it stops
        mirror.close()
        m, r = _figures("mirror", src), _figures("replica", dst)
        carried = r["records"] - base_r
        return {
            "rate": rate,
            "sent": sent,
            "received": carried,
            "lost": m["lost"] + r["lost"],
            "p50_us": r["lag_us_p50"],
            "p99_us": r["lag_us_p99"],
            "mirror_cpu_us": (cpu1[0] - cpu0[0]) / max(1, m["records"] - base_m) * 1e6,
            "replica_cpu_us": (cpu1[1] - cpu0[1]) / max(1, carried) * 1e6,
            "batches": r["batches"],
        }
    finally:
        for child in reversed(children):
            child.close()
        for name in (src, dst):
            for path in Path("/dev/shm").glob(f"feeder.{name}.*"):
                path.unlink(missing_ok=True)


def _ring(instance: str) -> int | None:
    try:
        with RingReader("book.BTC", instance=instance) as reader:
            return reader.write_seq
    except Exception:
        return None


def _figures(role: str, instance: str) -> dict | None:
    try:
        return read_status(role, instance)["rings"].get("book.BTC")
    except Exception:
        return None


def bare_phase(url: str, rate: float, seconds: float) -> dict:
    sub = Child(_py(f"from bench_mirror import bare_sub_main; bare_sub_main({url!r})"))
    pub = Child(_py(f"from bench_mirror import bare_pub_main; bare_pub_main({url!r}, {rate}, {seconds})"))
    try:
        assert sub.line() == "ready" and pub.line() == "ready"
        cpu0 = pub.cpu(), sub.cpu()
        pub.tell()
        sent = json.loads(pub.line())["sent"]
        cpu1 = pub.cpu(), sub.cpu()
        sub.tell()
        got = json.loads(sub.line())
        return {
            "rate": rate,
            "sent": sent,
            "received": got["received"],
            "p50_us": got.get("p50"),
            "p99_us": got.get("p99"),
            "pub_cpu_us": (cpu1[0] - cpu0[0]) / max(1, sent) * 1e6,
            "sub_cpu_us": (cpu1[1] - cpu0[1]) / max(1, got["received"]) * 1e6,
        }
    finally:
        pub.close()
        sub.close()


def median(runs: list[dict], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a short run: 1,000/s only, 0.5 s phases, no ladder")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--json", metavar="FILE")
    p.add_argument("--rates", default="1000,10000", help="latency phases, records/s (comma-separated)")
    p.add_argument("--no-ladder", action="store_true", help="skip the highest-sustained-rate search")
    ns = p.parse_args()
    seconds, repeat = (0.5, 1) if ns.quick else (ns.seconds, ns.repeat)
    rates = (1000,) if ns.quick else tuple(int(r) for r in ns.rates.split(","))
    results: dict = {
        "latency": [],
        "ladder": [],
        "machine": {"cpus": os.cpu_count(), "load": os.getloadavg()},
    }
    with tempfile.TemporaryDirectory() as tmp, NatsServer(Path(tmp), jetstream=False) as server:
        for rate in rates:
            feeder = [feeder_phase(server.url, rate, seconds, 1) for _ in range(repeat)]
            bare = [bare_phase(server.url, rate, seconds) for _ in range(repeat)]
            row = {"rate": rate, "feeder": feeder, "bare": bare}
            for key in ("p50_us", "p99_us", "mirror_cpu_us", "replica_cpu_us"):
                row[key] = median(feeder, key)
            for key in ("p50_us", "p99_us", "pub_cpu_us", "sub_cpu_us"):
                row["bare_" + key] = median(bare, key)
            row["lost"] = sum(r["lost"] for r in feeder)
            results["latency"].append(row)
            print(
                f"{rate:>7}/s  feeder p50 {row['p50_us']:.0f} us  p99 {row['p99_us']:.0f} us  "
                f"cpu/record mirror {row['mirror_cpu_us']:.1f} us replica {row['replica_cpu_us']:.1f} us | bare "
                f"p50 {row['bare_p50_us']:.0f} p99 {row['bare_p99_us']:.0f} cpu pub {row['bare_pub_cpu_us']:.1f} "
                f"sub {row['bare_sub_cpu_us']:.1f} | ratios cpu {row['mirror_cpu_us'] / row['bare_pub_cpu_us']:.2f} / "
                f"{row['replica_cpu_us'] / row['bare_sub_cpu_us']:.2f}, lost {row['lost']}",
                flush=True,
            )
        best = 0
        for rate in () if ns.quick or ns.no_ladder else LADDER:
            runs = [feeder_phase(server.url, rate, seconds, max(1, int(rate / 1000))) for _ in range(repeat)]
            kept = all(r["lost"] == 0 and r["received"] >= 0.99 * r["sent"] for r in runs)
            row = {
                "rate": rate, "sustained": kept, "runs": runs,
                "received_per_s": median([{"v": r["received"] / seconds} for r in runs], "v"),
                "mirror_cpu_us": median(runs, "mirror_cpu_us"), "replica_cpu_us": median(runs, "replica_cpu_us"),
            }  # fmt: skip
            results["ladder"].append(row)
            print(
                f"{rate:>7}/s batched: {'sustained' if kept else 'NOT sustained'}, received "
                f"{row['received_per_s']:.0f}/s, cpu/record mirror {row['mirror_cpu_us']:.2f} us replica "
                f"{row['replica_cpu_us']:.2f} us",
                flush=True,
            )
            if not kept:
                break
            best = rate
        results["highest_sustained"] = best
        if not ns.quick:
            print(f"highest sustained: {best}/s")
    if ns.json:
        Path(ns.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
