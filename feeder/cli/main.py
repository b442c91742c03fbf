"""`python -m feeder` / `feeder`: run the feeder, or one of the subcommands."""

from __future__ import annotations

import importlib
import sys

# subcommand -> module with a `main(argv) -> int`; anything else runs the feeder
SUBCOMMANDS = {
    "rings": "feeder.cli.rings",
    "status": "feeder.cli.status",
    "replay": "feeder.cli.replay",
    "monitor": "feeder.consumers.monitor",
    "record": "feeder.consumers.recorder",
    "recording": "feeder.consumers.recording",
    "latency": "feeder.consumers.latency",
    "example-strategy": "feeder.consumers.strategy",
    "mirror": "feeder.cli.mirror",
    "replicate": "feeder.cli.replicate",
}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in SUBCOMMANDS:
        code: int = importlib.import_module(SUBCOMMANDS[args[0]]).main(args[1:])
        return code
    from feeder.cli.run import main as run

    return run(args)
