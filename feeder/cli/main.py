"""`python -m feeder` / `feeder`: dispatch to the subcommands."""

from __future__ import annotations

import importlib
import sys

# subcommand -> module with a `main(argv) -> int`
SUBCOMMANDS = {
    "rings": "feeder.cli.rings",
}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in SUBCOMMANDS:
        return importlib.import_module(SUBCOMMANDS[args[0]]).main(args[1:])
    print(f"usage: feeder {{{','.join(SUBCOMMANDS)}}} ...", file=sys.stderr)
    return 2
