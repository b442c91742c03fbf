"""`feeder replay DIR [--speed X|max]`: recordings back into rings (worker sessions or ring recordings)."""

from __future__ import annotations

import argparse
import signal
import sys

from feeder.errors import FeederError


def _speed(text: str) -> float | None:
    if text == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--speed: {text!r} is not a number or 'max'") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("--speed must be > 0 (1.0 = recorded timing) or 'max'")
    return value


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="feeder replay",
        description="Replay recordings into rings of an instance: worker sessions (`feeder --record DIR`, "
        "replayed through the adapter) or ring recordings (`feeder record OUT RING...`, .npy or Parquet).",
    )
    p.add_argument(
        "directory",
        help="a directory of *.jsonl worker sessions, a recorder's OUT, or one ring's recording directory",
    )
    p.add_argument(
        "--speed", type=_speed, default=1.0, help="1.0 = recorded timing, 10 = ten times faster, max"
    )
    p.add_argument(
        "--instance", help="instance namespace for the rings (default $FEEDER_INSTANCE or default)"
    )
    p.add_argument("--capacity", type=int, default=1 << 16, help="records per ring (a power of two)")
    p.add_argument("--hold", action="store_true", help="keep the rings after the replay until Ctrl-C/SIGTERM")
    ns = p.parse_args(argv)
    from feeder.runtime.replay import open_replay

    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with open_replay(ns.directory, ns.instance, ns.capacity) as replayer:
            stats = replayer.run(ns.speed)
            print(stats.summary(), flush=True)
            if ns.hold:
                signal.pause()
    except FeederError as exc:
        print(f"feeder replay: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0
