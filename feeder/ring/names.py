"""Ring names and the instance namespace.

A ring is named `<stream>.<symbol>` (`book.BTC`, `trades.ETH-PERPETUAL`). Rings live inside a feeder
instance namespace so that two feeders (or two test runs) on one host never collide: the POSIX
shared-memory segment of ring R in instance I is `/feeder.I.R` (on Linux `/dev/shm/feeder.I.R`).
"""

from __future__ import annotations

import os
import re

from feeder.errors import UsageError

ENV_INSTANCE = "FEEDER_INSTANCE"
DEFAULT_INSTANCE = "default"
SEGMENT_PREFIX = "feeder."
SHM_DIR = "/dev/shm"

_INSTANCE_RE = re.compile(r"^[A-Za-z0-9_-]{1,31}$")
_RING_RE = re.compile(r"^[a-z][a-z0-9_]*\.[A-Za-z0-9_.-]+$")
MAX_RING_NAME = 63


def instance_name(instance: str | None = None) -> str:
    """The instance to use: the argument, else $FEEDER_INSTANCE, else `default`."""
    name = instance or os.environ.get(ENV_INSTANCE) or DEFAULT_INSTANCE
    if not _INSTANCE_RE.match(name):
        raise UsageError(
            f"instance name {name!r} is not allowed: use 1-31 letters, digits, '_' or '-'"
            f"{' (from $' + ENV_INSTANCE + ')' if not instance else ''}"
        )
    return name


def check_ring_name(name: str) -> str:
    """Validate `<stream>.<symbol>` and return it."""
    if not isinstance(name, str) or len(name) > MAX_RING_NAME or not _RING_RE.match(name):
        raise UsageError(
            f"ring name {name!r} is not allowed: expected '<stream>.<symbol>' such as 'book.BTC' "
            f"(stream lowercase, symbol letters/digits/'_.-', at most {MAX_RING_NAME} characters)"
        )
    return name


def segment_name(ring: str, instance: str | None = None) -> str:
    """The shm_open name (without the leading slash) of a ring."""
    return f"{SEGMENT_PREFIX}{instance_name(instance)}.{check_ring_name(ring)}"


def split_segment_name(segment: str) -> tuple[str, str] | None:
    """(instance, ring) for a feeder segment name, None for anything else."""
    if not segment.startswith(SEGMENT_PREFIX):
        return None
    instance, _, ring = segment[len(SEGMENT_PREFIX) :].partition(".")
    if not ring or not _INSTANCE_RE.match(instance) or not _RING_RE.match(ring):
        return None
    return instance, ring
