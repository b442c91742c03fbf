"""What every consumer program shares: common flags, `--check`, exit codes, stop signals, flag names.

Rules kept here:
- Exit codes: 0 done (bounded run finished, stopped by a signal, or `--check` found the arguments
  valid); 1 failed at run time (the message says why); 2 bad arguments (the message names the argument
  and what is allowed). Errors go to stderr as `<program>: <message>`.
- `--check` validates every argument and prints the plan as one JSON object, without attaching to a
  ring or connecting to a feeder, so a deployment can prove its commands valid with nothing running.
- SIGINT and SIGTERM ask for a clean stop (the program finishes what it must, e.g. cancels orders);
  a second one exits at once with 130.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from feeder import (
    FeederError,
    RingNotFound,
    RingReader,
    UsageError,
    check_ring_name,
    instance_name,
)
from feeder.records import flag_names

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_FORCED = 0, 1, 2, 130
DEFAULT_WAIT_S = 30.0


# --- arguments -----------------------------------------------------------------------------------


def parser(prog: str, description: str, epilog: str = "") -> argparse.ArgumentParser:
    """An argument parser with the flags every consumer takes: --instance, --wait, --check."""
    p = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=epilog + _EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--instance", help="feeder instance namespace (default $FEEDER_INSTANCE, else 'default')")
    p.add_argument(
        "--wait",
        type=non_negative(float),
        default=DEFAULT_WAIT_S,
        metavar="S",
        help=f"wait up to S seconds for the rings (and the feeder) to appear (default {DEFAULT_WAIT_S:g}; 0: fail at once)",
    )
    p.add_argument(
        "--check", action="store_true", help="validate the arguments, print the plan as JSON and exit"
    )
    return p


_EXIT_CODES = """
exit codes:
  0    done: bounded run finished, stopped by SIGINT/SIGTERM, or --check found the arguments valid
  1    failed at run time (the message says why)
  2    bad arguments (the message names the argument and what is allowed)
  130  a second SIGINT/SIGTERM forced the exit
"""


def add_bounds(p: argparse.ArgumentParser) -> None:
    """--count and --duration: a bounded run (both may be given: whichever comes first)."""
    p.add_argument("--count", type=positive(int), metavar="N", help="stop after N records")
    p.add_argument(
        "--duration",
        type=positive(float),
        metavar="S",
        help="stop S seconds after starting (waiting included)",
    )


def positive(kind: type) -> Callable[[str], Any]:
    """An argparse type: a number of `kind` greater than zero."""
    return _number(kind, lambda v: v > 0, "greater than 0")


def non_negative(kind: type) -> Callable[[str], Any]:
    """An argparse type: a number of `kind`, zero or more."""
    return _number(kind, lambda v: v >= 0, "0 or more")


def _number(kind: type, ok: Callable[[Any], bool], what: str) -> Callable[[str], Any]:
    noun = "an integer" if kind is int else "a number"

    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None
        if value != value or value in (float("inf"), float("-inf")) or not ok(value):
            raise argparse.ArgumentTypeError(f"{text!r}: expected {noun} {what}")
        return value

    return convert


def check_rings(rings: Sequence[str]) -> list[str]:
    """Validate ring names (`<stream>.<symbol>`); UsageError naming the bad one. Refuses duplicates."""
    for ring in rings:
        check_ring_name(ring)
    duplicates = sorted({r for r in rings if rings.count(r) > 1})
    if duplicates:
        raise UsageError(f"ring {duplicates[0]!r} is given twice: name each ring once")
    return list(rings)


def resolve_instance(instance: str | None) -> str:
    """The instance to use (the argument, else $FEEDER_INSTANCE, else default); UsageError if invalid."""
    return instance_name(instance)


def print_plan(plan: dict[str, Any]) -> int:
    """`--check`: print the validated plan as JSON; the exit code for success."""
    print(json.dumps({"ok": True, **plan}, indent=2), flush=True)
    return EXIT_OK


# --- running -------------------------------------------------------------------------------------


def run(prog: str, main: Callable[[], int]) -> int:
    """Run a program's body and turn the feeder's errors into a message and an exit code."""
    try:
        return main()
    except UsageError as exc:
        print(f"{prog}: {exc}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    except FeederError as exc:
        print(f"{prog}: {exc}", file=sys.stderr, flush=True)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_FORCED


class Stop:
    """Set by SIGINT/SIGTERM, or once a --duration has passed; a second signal exits with 130."""

    def __init__(self, duration: float | None = None):
        self.reason = ""
        self._deadline = None if duration is None else time.monotonic() + duration
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, frame: object) -> None:
        if self.reason.startswith("SIG"):
            raise SystemExit(EXIT_FORCED)
        self.reason = signal.Signals(signum).name

    def __bool__(self) -> bool:
        if not self.reason and self._deadline is not None and time.monotonic() >= self._deadline:
            self.reason = "duration reached"
        return bool(self.reason)

    def left(self, cap: float) -> float:
        """Seconds until the deadline, at most `cap` (for bounded waits)."""
        if self._deadline is None:
            return cap
        return max(0.0, min(cap, self._deadline - time.monotonic()))


def attach(
    ring: str, *, instance: str | None, start: str, wait_s: float, stop: Stop, mode: str = "spin_sleep"
) -> RingReader:
    """Attach to a ring, waiting up to `wait_s` for it to appear (the feeder may still be starting).

    `mode` is the reader's wait: `spin_sleep` (polite, the default) or `spin` (lowest latency, a busy CPU).
    """
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return RingReader(ring, instance=instance, start=start, wait=mode)
        except RingNotFound:
            if stop or time.monotonic() >= deadline:
                raise RingNotFound(
                    f"no ring {ring!r} in feeder instance {resolve_instance(instance)!r} after waiting "
                    f"{wait_s:g} s: is the feeder running with that ring? (`python -m feeder rings` lists them)"
                ) from None
        time.sleep(0.05)


# --- formatting ----------------------------------------------------------------------------------


def flag_text(flags: int) -> str:
    """`SNAPSHOT|GAP`, `-` for none; unknown bits shown as hex."""
    return "|".join(flag_names(flags)) or "-"


def clock(ns: int | None = None) -> str:
    """Local wall-clock time of day with milliseconds (now, or `ns` since the epoch)."""
    when = datetime.fromtimestamp((time.time_ns() if ns is None else ns) / 1e9)
    return when.strftime("%H:%M:%S.%f")[:-3]


def say(text: str) -> None:
    """One line on stdout, flushed (the programs are often read through a pipe)."""
    print(f"{clock()} {text}", flush=True)
