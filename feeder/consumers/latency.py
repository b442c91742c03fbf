"""`feeder latency RING...`: per-stage latency percentiles from the records' timestamps.

Stages (see feeder/consumers/stages.py): exchange->recv (coarse: Deribit sends milliseconds), recv->publish
(the feeder's own processing), publish->read (the ring hop), end-to-end. Prints p50/p99/p99.9/max per
window and for the whole run, as a table or as JSON lines.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from feeder.consumers import common
from feeder.consumers.follow import Lost, RingFollower, wait_any
from feeder.consumers.stages import STAGES, StageLatency, Stats

PROG = "feeder latency"

EPILOG = """\
publish->read includes how long the probe took to look: with the default spin-then-sleep wait it may
sleep up to 1 ms when idle; --spin busy-waits (lowest latency, one CPU at 100 %). With several rings the
probe polls them in turn: one ring per probe measures the hop most faithfully. Timestamps are wall
clock (CLOCK_REALTIME); the exchange's are whole milliseconds.

examples:
  feeder latency book.BTC
  feeder latency book.BTC --spin --window 5 --duration 60 --json
"""


def build_parser() -> argparse.ArgumentParser:
    p = common.parser(PROG, "Per-stage latency percentiles of feeder ring records.", EPILOG)
    p.add_argument("rings", nargs="+", metavar="RING", help="ring names, e.g. book.BTC")
    p.add_argument(
        "--window",
        type=common.positive(float),
        default=1.0,
        metavar="S",
        help="seconds per report window (default 1)",
    )
    p.add_argument("--spin", action="store_true", help="busy-wait for records instead of spin-then-sleep")
    p.add_argument("--json", action="store_true", help="one JSON object per window, then one for the run")
    common.add_bounds(p)
    return p


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    return common.run(PROG, lambda: _main(ns))


def check_plan(ns: argparse.Namespace, instance: str) -> dict[str, Any]:
    """What `--check` prints: the validated settings."""
    return {
        "program": "latency",
        "instance": instance,
        "rings": ns.rings,
        "window_s": ns.window,
        "wait_mode": "spin" if ns.spin else "spin_sleep",
        "json": ns.json,
        "count": ns.count,
        "duration_s": ns.duration,
        "wait_s": ns.wait,
    }


def _main(ns: argparse.Namespace) -> int:
    common.check_rings(ns.rings)
    instance = common.resolve_instance(ns.instance)
    if ns.check:
        return common.print_plan(check_plan(ns, instance))
    stop = common.Stop(ns.duration)
    mode = "spin" if ns.spin else "spin_sleep"
    followers = []
    try:
        for ring in ns.rings:
            reader = common.attach(
                ring, instance=instance, start="newest", wait_s=ns.wait, stop=stop, mode=mode
            )
            followers.append(RingFollower(reader, mode))
        Probe(followers, ns.window, ns.json).run(stop, ns.count)
    finally:
        for f in followers:
            f.close()
    return common.EXIT_OK


class Probe:
    """Reads the rings, feeds the stage statistics, prints a report per window."""

    def __init__(self, followers: list[RingFollower], window: float, as_json: bool):
        self.followers, self.window, self.as_json = followers, window, as_json
        self.latency = StageLatency()
        self.windows = 0
        self.records = self.lost = 0
        self._window_records = self._window_lost = 0

    @property
    def _read(self) -> int:
        return self.records + self._window_records

    def run(self, stop: common.Stop, count: int | None) -> None:
        began = window_start = time.monotonic()
        while not stop and (count is None or self._read < count):
            got = self._read_all(None if count is None else count - self._read)
            now = time.monotonic()
            if now - window_start >= self.window:
                self._report_window(now - window_start)
                window_start = now
            elif not got:
                wait_any(self.followers, stop.left(min(0.1, window_start + self.window - now)))
        now = time.monotonic()
        if self._window_records or self._window_lost:
            self._report_window(now - window_start)
        self._report(self.latency.totals(), {"total": True, "seconds": round(now - began, 3)})

    def _read_all(self, room: int | None) -> int:
        got = 0
        for follower in self.followers:
            if room is not None and got >= room:
                break
            records = follower.read(None if room is None else room - got)
            read_ns = time.time_ns()
            self.latency.add(records, read_ns)
            for event in follower.events():
                if isinstance(event, Lost):
                    self._window_lost += event.count
            got += len(records)
        self._window_records += got
        return got

    def _report_window(self, seconds: float) -> None:
        self.windows += 1
        self.records += self._window_records
        self.lost += self._window_lost
        head = {"window": self.windows, "seconds": round(seconds, 3)}
        head.update(records=self._window_records, lost=self._window_lost)
        self._window_records = self._window_lost = 0
        self._report(self.latency.close_window(), head)

    def _report(self, stats: dict[str, Stats | None], head: dict[str, Any]) -> None:
        if head.get("total"):
            head.update(records=self.records, lost=self.lost)
        rings = [f.ring for f in self.followers]
        if self.as_json:
            doc = {**head, "rings": rings, "stages": {k: v and v.micros() for k, v in stats.items()}}
            print(json.dumps(doc), flush=True)
            return
        what = "whole run (1 % buckets)" if head.get("total") else f"window {head['window']}"
        common.say(
            f"{what}, {head['seconds']:.1f} s: {head['records']} records from {', '.join(rings)}; "
            f"lost {head['lost']}"
        )
        print("\n".join(table(stats)), flush=True)


def table(stats: dict[str, Stats | None]) -> list[str]:
    """Rows of percentiles in microseconds, one per stage."""
    lines = [f"  {'stage (µs)':<16}{'n':>9}{'p50':>11}{'p99':>11}{'p99.9':>11}{'max':>11}"]
    for stage in STAGES:
        s = stats[stage]
        if s is None:
            lines.append(f"  {stage:<16}{0:>9}{'-':>11}{'-':>11}{'-':>11}{'-':>11}")
            continue
        cells = "".join(f"{v / 1e3:>11.1f}" for v in (s.p50, s.p99, s.p99_9, s.max))
        lines.append(f"  {stage:<16}{s.n:>9}{cells}")
    return lines


if __name__ == "__main__":
    sys.exit(main())
