"""`feeder recording DIR...`: load recordings made by `feeder record`, verify them, print a summary as JSON.

The format and the loader are `feeder.recordings`; this is only its command line. Exit status 1 when a
recording is damaged (seqs missing that no recorded loss explains, a file missing or unreadable).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from feeder.recordings import RecordingError, read, recordings_in

PROG = "feeder recording"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Load recordings made by `feeder record`, verify them and print a summary as JSON.",
        epilog="exit status 1 when a recording is damaged (seqs missing that no recorded loss explains).",
    )
    p.add_argument(
        "paths", nargs="+", metavar="DIR", help="a ring's recording directory, or the recorder's OUT"
    )
    ns = p.parse_args(argv)
    status = 0
    for given in ns.paths:
        found = recordings_in(Path(given))
        if not found:
            print(f"{PROG}: no recording in {given}", file=sys.stderr)
            status = 1
        for path in found:
            try:
                summary = read(path).summary()
            except RecordingError as exc:
                summary = {"path": str(path), "ok": False, "error": str(exc)}
            status = status or (0 if summary["ok"] else 1)
            print(json.dumps(summary, indent=2), flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
