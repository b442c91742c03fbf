"""How the feeder's own programs (supervisor, workers, bridges) log: one line format, to stderr, and the
chatter of the libraries under them kept out unless asked for with `--log-level debug`.

picows logs every connection's establishment (with socket details) and every disconnect at INFO; the
client's own events already say both, in the feeder's words.
"""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CHATTY = ("picows",)


def configure(level: str, fmt: str = FORMAT) -> None:
    """Root logging at `level` (a level name) with `fmt`; the chatty libraries at WARNING unless debugging."""
    logging.basicConfig(level=level.upper(), format=fmt, stream=sys.stderr)
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        for name in CHATTY:
            logging.getLogger(name).setLevel(logging.WARNING)
