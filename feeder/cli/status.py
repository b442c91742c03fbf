"""`python -m feeder status`: what a running instance is doing, from another terminal."""

from __future__ import annotations

import argparse
import json
import sys
import time

from feeder.errors import FeederError
from feeder.runtime.display import render
from feeder.runtime.handle import FeederHandle


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="feeder status", description="Show a running feeder instance.")
    p.add_argument("--instance", help="instance namespace (default $FEEDER_INSTANCE or default)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--watch", type=float, metavar="S", help="refresh every S seconds until interrupted")
    ns = p.parse_args(argv)
    try:
        with FeederHandle(ns.instance) as handle:
            while True:
                status = handle.status()
                out = json.dumps(status, indent=2) if ns.json else "\n".join(render(status))
                if ns.watch:
                    sys.stdout.write("\x1b[H\x1b[2J")
                print(out, flush=True)
                if not ns.watch:
                    return 0
                time.sleep(ns.watch)
    except FeederError as exc:
        print(f"feeder status: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
