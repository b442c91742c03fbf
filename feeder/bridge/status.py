"""Figures of a mirror or a replica, per ring, and the status file that `feeder mirror status` reads.

Each side counts, per ring: records and bytes carried, batches (messages), records lost and why, GAP
records written (replica), and its lag behind the source: in seqs (the source's write position minus its
own) and in microseconds (when it carried a record minus the record's `ts_publish`: across hosts this
includes the difference between their clocks). Every second the process replaces
`<run dir>/<mirror|replica>.json` (written to a temporary file, then renamed, so a reader never sees half
of it); the file stays after the process exits, with `"running": false`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from feeder.errors import UsageError
from feeder.runtime.rundir import run_dir


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
    lag_us_max: float | None = None
    last_ns: int = 0  # wall clock of the last batch
    state: str = "live"
    problem: str = ""

    def carried(self, n: int, nbytes: int, ts_publish_ns: int, now_ns: int) -> None:
        self.records += n
        self.bytes += nbytes
        self.batches += 1
        self.last_ns = now_ns
        if n:
            lag = (now_ns - ts_publish_ns) / 1e3
            self.lag_us_last = lag
            self.lag_us_max = lag if self.lag_us_max is None else max(self.lag_us_max, lag)


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
    extra: dict = field(default_factory=dict)

    def ring(self, name: str) -> RingFigures:
        figures = self.rings.get(name)
        if figures is None:
            figures = self.rings[name] = RingFigures()
        return figures

    def to_dict(self) -> dict:
        out = asdict(self)
        out["updated_ns"] = time.time_ns()
        return out


def status_path(role: str, instance: str | None) -> Path:
    return run_dir(instance) / f"{role}.json"


def write_status(status: Status) -> None:
    path = status_path(status.role, status.instance)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(status.to_dict(), indent=1))
    os.replace(tmp, path)


def read_status(role: str, instance: str | None) -> dict:
    path = status_path(role, instance)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"no {role} has run for this instance ({path} does not exist)") from None


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
