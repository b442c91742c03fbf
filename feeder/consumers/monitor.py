"""`feeder monitor RING...`: a live top-of-book monitor for book rings.

Shows, per ring: trust state, best bid/ask with sizes, spread, change_id, the last record's flags,
age of the last update, records/s, records lost by this reader, GAP and SNAPSHOT counts. Every GAP,
SNAPSHOT, loss, writer change and feeder restart is also printed as its own event line at once, so
none hides between two refreshes. `--display live` redraws a screen (the default on a terminal);
`--display plain` prints log lines (the default otherwise). It follows rings across feeder restarts.
"""

from __future__ import annotations

import collections
import sys
import time

from feeder import UsageError
from feeder.consumers import common
from feeder.consumers.follow import RingFollower, wait_any
from feeder.consumers.topbook import TopOfBook
from feeder.ring.schema import record_kind

PROG = "feeder monitor"
DISPLAYS = ("auto", "live", "plain")
EVENTS_SHOWN = 12

EPILOG = """\
states: live (trustworthy: since a SNAPSHOT), GAP (the feeder missed updates: not trustworthy until the
next SNAPSHOT), waiting (no record yet), closed (the feeder stopped; the monitor re-attaches when it is
back). "lost" counts records this monitor did not read because the writer lapped it.

examples:
  feeder monitor book.BTC book.ETH
  feeder monitor book.BTC --display plain --interval 5
  feeder monitor book.BTC --start oldest --count 100 --display plain
"""


def build_parser():
    p = common.parser(PROG, "Live top-of-book monitor for feeder book rings.", EPILOG)
    p.add_argument("rings", nargs="+", metavar="RING", help="book ring names, e.g. book.BTC")
    p.add_argument(
        "--display",
        choices=DISPLAYS,
        default="auto",
        help="live: redraw a screen; plain: log lines; auto: live on a terminal (default)",
    )
    p.add_argument(
        "--interval",
        type=common.positive(float),
        metavar="S",
        help="seconds between refreshes (default 0.25 live, 1 plain)",
    )
    p.add_argument(
        "--start",
        choices=("newest", "oldest"),
        default="newest",
        help="newest: only new records (default); oldest: every record the ring still holds",
    )
    common.add_bounds(p)
    return p


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    return common.run(PROG, lambda: _main(ns))


def display(ns) -> tuple[bool, float]:
    """(live screen?, refresh interval) from --display and --interval."""
    live = ns.display == "live" or (ns.display == "auto" and sys.stdout.isatty())
    return live, ns.interval or (0.25 if live else 1.0)


def check_plan(ns, instance: str) -> dict:
    """What `--check` prints: the validated settings."""
    live, interval = display(ns)
    return {
        "program": "monitor",
        "instance": instance,
        "rings": ns.rings,
        "display": "live" if live else "plain",
        "interval_s": interval,
        "start": ns.start,
        "count": ns.count,
        "duration_s": ns.duration,
        "wait_s": ns.wait,
    }


def _main(ns) -> int:
    common.check_rings(ns.rings)
    instance = common.resolve_instance(ns.instance)
    if ns.check:
        return common.print_plan(check_plan(ns, instance))
    live, interval = display(ns)
    stop = common.Stop(ns.duration)
    followers = []
    try:
        for ring in ns.rings:
            reader = common.attach(ring, instance=instance, start=ns.start, wait_s=ns.wait, stop=stop)
            followers.append(RingFollower(reader))
            if record_kind(reader.record_type) != "book":
                raise UsageError(
                    f"ring {ring!r} holds {reader.record_type} records: the monitor shows book rings"
                )
        Monitor(followers, live, interval, instance).run(stop, ns.count)
    finally:
        for f in followers:
            f.close()
    return common.EXIT_OK


class Monitor:
    """The read-and-show loop over a set of followed book rings."""

    def __init__(self, followers: list[RingFollower], live: bool, interval: float, instance: str):
        self.followers = followers
        self.books = [TopOfBook(f.ring) for f in followers]
        self.live, self.interval, self.instance = live, interval, instance
        self.events: collections.deque[str] = collections.deque(maxlen=EVENTS_SHOWN)

    def run(self, stop: common.Stop, count: int | None) -> None:
        total = 0
        window_start = time.monotonic()
        while not stop and (count is None or total < count):
            got = 0
            for follower, book in zip(self.followers, self.books, strict=True):
                room = None if count is None else count - total - got
                if room == 0:
                    break
                records = follower.read(room)
                for event in follower.events():
                    self._event(book, book.on_event(event))
                for line in book.on_records(records):
                    self._event(book, line)
                got += len(records)
            total += got
            now = time.monotonic()
            if now - window_start >= self.interval:
                self._refresh(now - window_start)
                window_start = now
            elif not got:
                wait_any(self.followers, stop.left(min(0.1, window_start + self.interval - now)))
        self._refresh(time.monotonic() - window_start, final=True)

    def _event(self, book: TopOfBook, line: str | None) -> None:
        if line is None:
            return
        if self.live:
            self.events.append(f"{common.clock()} {book.ring} {line}")
        else:
            common.say(f"{book.ring} {line}")

    def _refresh(self, elapsed: float, final: bool = False) -> None:
        if not final:  # a final partial window would make a meaningless rate
            for book in self.books:
                book.tick(elapsed)
        now_ns = time.time_ns()
        rows = [book.row(now_ns) for book in self.books]
        if self.live:
            screen = [] if final else ["\x1b[H\x1b[2J"]
            screen.append(f"feeder monitor  instance {self.instance}  {common.clock()}  (Ctrl-C to quit)\n")
            screen.extend(table(rows))
            if self.events:
                screen.append("\nevents:")
                screen.extend(self.events)
            print("\n".join(screen), flush=True)
        else:
            for row in rows:
                common.say(plain_line(row))
        if final:
            for row in rows:
                common.say(summary_line(row))


def _px(level: tuple[float, float] | None) -> tuple[str, str]:
    return ("-", "-") if level is None else (f"{level[0]:.10g}", f"{level[1]:.10g}")


def _age(row: dict) -> str:
    age = row.get("age_ms")
    if age is None:
        return "-"
    return f"{age:.1f}ms" if age < 10_000 else f"{age / 1000:.0f}s"


def plain_line(row: dict) -> str:
    """One log line for a ring."""
    if "seq" not in row:
        return f"{row['ring']} {row['state']}: no record yet (lost {row['lost']})"
    bid_px, bid_sz = _px(row["bid"])
    ask_px, ask_sz = _px(row["ask"])
    spread = "-" if row["spread"] is None else f"{row['spread']:.10g}"
    return (
        f"{row['ring']} {row['state']} bid {bid_px} x {bid_sz} | ask {ask_px} x {ask_sz} | spread {spread} "
        f"| change_id {row['change_id']} seq {row['seq']} flags {common.flag_text(row['flags'])} "
        f"| age {_age(row)} | {row['rate']:.1f} rec/s | lost {row['lost']} "
        f"| gaps {row['gaps']} snapshots {row['snapshots']}"
    )


_COLUMNS = (
    ("ring", 14),
    ("state", 8),
    ("bid size", 12),
    ("bid", 12),
    ("ask", 12),
    ("ask size", 12),
    ("spread", 9),
    ("change_id", 14),
    ("flags", 16),
    ("age", 9),
    ("rec/s", 9),
    ("lost", 7),
    ("gaps", 5),
    ("snaps", 5),
)


def table(rows: list[dict]) -> list[str]:
    """The live screen's table: a header and one line per ring."""
    lines = ["  ".join(name.rjust(width) for name, width in _COLUMNS)]
    for row in rows:
        bid_px, bid_sz = _px(row.get("bid"))
        ask_px, ask_sz = _px(row.get("ask"))
        spread = row.get("spread")
        cells = (
            row["ring"],
            row["state"],
            bid_sz,
            bid_px,
            ask_px,
            ask_sz,
            "-" if spread is None else f"{spread:.6g}",
            str(row.get("change_id", "-")),
            common.flag_text(row["flags"]) if "flags" in row else "-",
            _age(row),
            f"{row['rate']:.1f}",
            str(row["lost"]),
            str(row["gaps"]),
            str(row["snapshots"]),
        )
        lines.append("  ".join(cell.rjust(width) for cell, (_, width) in zip(cells, _COLUMNS, strict=True)))
    return lines


def summary_line(row: dict) -> str:
    return (
        f"summary {row['ring']}: read {row['records']} records, lost {row['lost']}, gaps {row['gaps']}, "
        f"snapshots {row['snapshots']}, crossed {row['crossed']}, state {row['state']}"
    )


if __name__ == "__main__":
    sys.exit(main())
