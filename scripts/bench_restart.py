"""How fast data flows again after a worker is killed (target: <= 1 s), measured on the real program.

Starts `python -m feeder --sim`, then repeatedly SIGKILLs (or SIGSTOPs) the worker writing `book.BTC` and
measures, from the signal to what a reader sees: the GAP record (readers learn the book is stale) and the
first SNAPSHOT of the replacement worker (data flows again). Faults are spaced by --interval seconds (the
supervisor restarts a worker that ran stably at once, and backs off on quick repeated failures). Prints
p50/max per fault kind; --json.

    python scripts/bench_restart.py [--kills 10] [--stops 3] [--workers 2] [--interval 11] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from feeder import GAP, SNAPSHOT, FeederHandle, FeederNotRunning, RingReader


def wait(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.0005)
    raise SystemExit(f"timed out waiting for {what}")


def status(instance: str) -> dict | None:
    try:
        with FeederHandle(instance) as h:
            return h.status()
    except (FeederNotRunning, OSError):
        return None


def writer_of(st: dict, ring: str) -> dict:
    return next(w for w in st["workers"] if ring in w["rings"])


def one_fault(instance: str, reader: RingReader, sig: int) -> tuple[float, float]:
    """(seconds to the GAP record, seconds to the replacement's SNAPSHOT)."""
    st = wait(lambda: status(instance), 30, "status")
    wait(
        lambda: all(w["state"] == "running" and w["connected"] for w in status(instance)["workers"]),
        60,
        "workers up",
    )
    reader.read()
    pid = writer_of(st, reader.name)["pid"]
    t0 = time.time_ns()
    os.kill(pid, sig)
    gap_ns = snap_ns = None
    while snap_ns is None:
        recs = reader.read()
        for flags, published in zip(recs["flags"], recs["ts_publish"], strict=True):
            if gap_ns is None and flags & GAP and published > t0:
                gap_ns = published
            if gap_ns is not None and flags & SNAPSHOT and published > t0:
                snap_ns = published
                break
        if time.time_ns() - t0 > 60e9:
            raise SystemExit(f"no recovery within 60 s (GAP seen: {gap_ns is not None})")
        time.sleep(0.0005)
    return (gap_ns - t0) / 1e9, (snap_ns - t0) / 1e9


def summary(values: list[float]) -> dict:
    return (
        {"n": len(values), "p50_s": statistics.median(values), "max_s": max(values)} if values else {"n": 0}
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=10)
    p.add_argument("--stops", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--interval", type=float, default=11.0, help="seconds between faults")
    p.add_argument("--json", action="store_true")
    ns = p.parse_args()
    instance = f"benchrestart{uuid.uuid4().hex[:6]}"
    config = Path(tempfile.mkdtemp()) / "feeder.toml"
    config.write_text("max_restarts = 1000\n")  # this run kills on purpose; do not give up on the worker
    feeder = subprocess.Popen(
        [sys.executable, "-m", "feeder", "--sim", "--workers", str(ns.workers), "--display", "off",
         "--instance", instance, "--sim-rate", "1000", "--log-level", "warning", "--config", str(config)],
        start_new_session=True, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    results: dict[str, list[tuple[float, float]]] = {"SIGKILL": [], "SIGSTOP": []}
    try:
        wait(lambda: status(instance), 60, "the feeder to start")
        with RingReader("book.BTC", instance=instance) as reader:
            for sig, count in ((signal.SIGKILL, ns.kills), (signal.SIGSTOP, ns.stops)):
                for _ in range(count):
                    time.sleep(ns.interval)
                    results[sig.name].append(one_fault(instance, reader, sig))
    finally:
        feeder.send_signal(signal.SIGTERM)
        feeder.wait(60)
    report = {
        kind: {"gap": summary([g for g, _ in runs]), "data_again": summary([s for _, s in runs])}
        for kind, runs in results.items()
    }
    report["target_data_again_after_sigkill_s"] = 1.0
    if ns.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{'fault':<8} {'n':>3} {'GAP p50':>9} {'GAP max':>9} {'data p50':>9} {'data max':>9}")
    for kind in results:
        g, d = report[kind]["gap"], report[kind]["data_again"]
        if g["n"]:
            print(
                f"{kind:<8} {g['n']:>3} {g['p50_s']:>8.3f}s {g['max_s']:>8.3f}s {d['p50_s']:>8.3f}s {d['max_s']:>8.3f}s"
            )
    print("SIGSTOP includes the 1 s after which a silent, stopped worker is declared hung.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
