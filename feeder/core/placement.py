"""Where instruments and workers go: instruments to workers, workers to CPUs. Pure: lists in, plan out.

Rules it keeps:
- Every stream of an instrument goes to one worker (one connection), so per-instrument order is the
  exchange's order and each ring has exactly one writing worker.
- There are never more workers than instruments.
- Each instrument goes to the worker with the fewest instruments (the lowest index among equals): from
  empty workers this is round robin, and an instrument listed later joins the least loaded worker.
  With `weights`, load is their sum instead of a count (a busy perpetual weighs more than an option;
  a whole chain of instruments, written by one worker, is one "instrument" of its summed weight).
- Workers go round robin over the CPUs they may use.
- What is questionable about the plan is returned as warnings a user can act on; the shell logs them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from feeder.errors import UsageError


@dataclass(frozen=True)
class Placement:
    rings: tuple[tuple[str, ...], ...]  # per worker, in the order given
    cpus: tuple[int, ...]  # per worker
    warnings: tuple[str, ...] = ()


def least_loaded(loads: Sequence[int]) -> int:
    """The worker that should take the next instrument."""
    return min(range(len(loads)), key=loads.__getitem__)


def place(
    instruments: Sequence[Sequence[str]],
    workers: int,
    cpus: Sequence[int],
    busy_poll: bool,
    weights: Sequence[int] | None = None,
) -> Placement:
    """`instruments`: each instrument's rings (or a unit's, see `weights`). `cpus`: the CPUs workers may
    be pinned to."""
    if not instruments or workers < 1 or not cpus:
        raise UsageError("placement needs at least one instrument, one worker and one CPU")
    n = min(workers, len(instruments))
    warnings = []
    if workers > n:
        warnings.append(
            f"{workers} workers asked for {len(instruments)} instruments: running {n} (each instrument's "
            f"streams share one connection); set workers = {n} to silence this"
        )
    if n > len(cpus):
        warnings.append(
            f"{n} workers share {len(cpus)} CPUs: expect contention; use fewer workers or more CPUs (--cpus)"
        )
    if busy_poll and n >= len(cpus):
        warnings.append(
            f"busy_poll with {n} workers on {len(cpus)} CPUs: they take every core; "
            f"leave a CPU free (--cpus) or turn busy_poll off"
        )
    rings: list[list[str]] = [[] for _ in range(n)]
    loads = [0] * n
    for i, streams in enumerate(instruments):
        worker = least_loaded(loads)
        rings[worker].extend(streams)
        loads[worker] += 1 if weights is None else weights[i]
    return Placement(tuple(map(tuple, rings)), tuple(cpus[i % len(cpus)] for i in range(n)), tuple(warnings))
