"""Figures of a mirror or a replica, per ring, and the status file that `feeder mirror status` reads.

Each side counts, per ring: records and bytes carried, batches (messages), records lost and why, GAP
records written (replica), and its lag behind the source: in seqs (the source's write position minus its
own) and in microseconds (when it carried a record minus the record's `ts_publish`: across hosts this
includes the difference between their clocks). Every second the process replaces
`<run dir>/<mirror|replica>.json` (written to a temporary file, then renamed, so a reader never sees half
of it); the file stays after the process exits, with `"running": false`.
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import json
import os
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from feeder.errors import UsageError
from feeder.runtime.rundir import run_dir

# lag histogram: buckets growing 5 % each, from 1 us to about 100 s
_EDGES_US = np.geomspace(1.0, 1e8, 379)
_EDGE_LIST = _EDGES_US.tolist()


class LagHistogram:
    """Lags (us) since start, in 5 % buckets: percentiles without keeping samples."""

    def __init__(self) -> None:
        self.counts = np.zeros(len(_EDGES_US) + 1, np.int64)

    def add(self, lags_us: np.ndarray) -> None:
        self.counts += np.bincount(np.searchsorted(_EDGES_US, lags_us), minlength=len(self.counts))

    def add_one(self, lag_us: float) -> None:
        self.counts[bisect.bisect_left(_EDGE_LIST, lag_us)] += 1

    def percentile(self, q: float) -> float | None:
        total = int(self.counts.sum())
        if not total:
            return None
        index = int(np.searchsorted(np.cumsum(self.counts), q / 100 * total))
        return float(_EDGES_US[min(index, len(_EDGES_US) - 1)])


@dataclass
class RingFigures:
    records: int = 0
    bytes: int = 0
    batches: int = 0
    lost: int = 0  # mirror: lapped, torn or unpublished; replica: seqs it holds no source record for
    lost_in_transit: int = 0  # replica: seqs that went missing between the mirror and here
    repaired: int = 0  # replica: records filled from JetStream
    gaps: int = 0  # replica: GAP/MARKER records written for missing seqs
    bad_batches: int = 0  # replica: messages refused (bad headers, layout, records)
    epoch: int = 0
    position: int = 0  # the next seq this side accounts for
    lag_seq: int = 0
    lag_us_last: float | None = None
    lag_us_p50: float | None = None  # since start (5 % buckets)
    lag_us_p99: float | None = None
    lag_us_max: float | None = None
    last_ns: int = 0  # wall clock of the last batch
    state: str = "live"
    problem: str = ""

    lags: LagHistogram = field(default_factory=LagHistogram, repr=False)

    def carried(self, n: int, nbytes: int, ts_publish_ns: np.ndarray, now_ns: int) -> None:
        """A batch of `n` records carried at `now_ns`; their `ts_publish` give the lag."""
        self.records += n
        self.bytes += nbytes
        self.batches += 1
        self.last_ns = now_ns
        if n == 1:
            lag = (now_ns - int(ts_publish_ns[0])) / 1e3
            self.lags.add_one(lag)
            self.lag_us_last, top = lag, lag
        elif n:
            lags = (now_ns - ts_publish_ns.astype(np.int64)) / 1e3
            self.lags.add(lags)
            self.lag_us_last, top = float(lags[-1]), float(lags.max())
        if n:
            self.lag_us_max = top if self.lag_us_max is None else max(self.lag_us_max, top)

    def carried_one(self, nbytes: int, ts_publish_ns: int, now_ns: int) -> None:
        """`carried` for one record, without arrays."""
        self.records += 1
        self.bytes += nbytes
        self.batches += 1
        self.last_ns = now_ns
        lag = (now_ns - ts_publish_ns) / 1e3
        self.lags.add_one(lag)
        self.lag_us_last = lag
        if self.lag_us_max is None or lag > self.lag_us_max:
            self.lag_us_max = lag

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "lags"}
        out["lag_us_p50"], out["lag_us_p99"] = self.lags.percentile(50), self.lags.percentile(99)
        return out


@dataclass
class Status:
    role: str  # mirror | replica
    instance: str
    source: str
    nats: str
    pid: int = field(default_factory=os.getpid)
    started_ns: int = field(default_factory=time.time_ns)
    connected: bool = False
    reconnects: int = 0
    errors: int = 0
    last_error: str = ""
    running: bool = True
    rings: dict[str, RingFigures] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def ring(self, name: str) -> RingFigures:
        figures = self.rings.get(name)
        if figures is None:
            figures = self.rings[name] = RingFigures()
        return figures

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "rings"}
        out["rings"] = {name: figures.to_dict() for name, figures in self.rings.items()}
        out["updated_ns"] = time.time_ns()
        return out


def status_path(role: str, instance: str | None) -> Path:
    return run_dir(instance) / f"{role}.json"


def write_status(status: Status) -> None:
    path = status_path(status.role, status.instance)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(status.to_dict(), indent=1))
    os.replace(tmp, path)


def read_status(role: str, instance: str | None) -> dict[str, Any]:
    path = status_path(role, instance)
    try:
        status = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"no {role} has run for this instance ({path} does not exist)") from None
    if not isinstance(status, dict):
        raise UsageError(f"{path} holds a JSON {type(status).__name__}, not a {role}'s status")
    return status


class RoleLock:
    """One mirror (or replica) per instance: an flock on `<run dir>/<role>.lock` for the process's life."""

    def __init__(self, role: str, instance: str | None):
        directory = run_dir(instance)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = directory / f"{role}.lock"
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise UsageError(
                f"a {role} already runs for instance {directory.name!r} (lock {self.path}); stop it first"
            ) from None

    def release(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)
