"""The buffered background writer behind `record_to`: frames in, JSONL lines (redacted) on disk.

The receive path only appends a tuple to a deque (no lock, no formatting, no I/O); a writer thread
wakes every `flush_interval`, formats the batch (feeder.core.recording: redaction, base64) and writes
it. If the disk falls so far behind that `max_backlog` frames wait, new frames are dropped and counted,
and the trailer line says how many: the receive path never blocks and nothing is lost silently.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from pathlib import Path

from feeder.core import recording


def _kind(frame: str | bytes | bytearray) -> tuple[str, str | bytes | bytearray]:
    """("text", str) or ("binary", bytes). The receive path hands frames over undecoded (it reads them
    as bytes for speed), so a bytes frame that is valid UTF-8 is recorded as text."""
    if isinstance(frame, str):
        return "text", frame
    try:
        return "text", frame.decode()
    except UnicodeDecodeError:
        return "binary", frame


class Recorder:
    def __init__(
        self, path: str | Path, url: str, flush_interval: float = 0.05, max_backlog: int = 1_000_000
    ):
        self.path = Path(path)
        self.written = 0
        self.dropped = 0
        self._backlog: deque[tuple[int, str, str | bytes | bytearray]] = deque()
        self._max_backlog = max_backlog
        self._interval = flush_interval
        self._stop = threading.Event()
        self._file = open(self.path, "ab")  # noqa: SIM115 -- owned by the writer thread until close()
        self._file.write(recording.header(url, time.time_ns()))
        self._thread = threading.Thread(target=self._run, name=f"recorder:{self.path.name}", daemon=True)
        self._thread.start()

    def record(self, ts: int, direction: str, frame: str | bytes | bytearray) -> None:
        """Queue one frame; never blocks."""
        if len(self._backlog) >= self._max_backlog:
            self.dropped += 1
            return
        self._backlog.append((ts, direction, frame))

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._write_batch()
        self._write_batch()

    def _write_batch(self) -> None:
        backlog, lines = self._backlog, []
        while backlog:
            ts, direction, frame = backlog.popleft()
            lines.append(recording.format_entry(ts, direction, *_kind(frame)))
        if lines:
            self._file.write(b"".join(lines))
            self._file.flush()
            self.written += len(lines)

    def close(self) -> None:
        """Write everything queued, then the trailer; idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join()
        self._file.write(recording.trailer(time.time_ns(), self.written, self.dropped))
        self._file.close()
