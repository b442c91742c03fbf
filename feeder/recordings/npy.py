"""`--format npy`: each time slice is one `chunk-00000001.npy` file (raw ring records, numpy's format).

Rules kept here: chunks are numbered from 1 without holes and written atomically (files.py); a missing
or damaged chunk is a RecordingError naming it. Reading needs nothing but numpy.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from feeder.recordings.files import RecordingError, write_atomically

NAME = "npy"
_CHUNK_RE = re.compile(r"^chunk-(\d{8})\.npy$")


def chunk_name(number: int) -> str:
    return f"chunk-{number:08d}.npy"


def chunks(path: Path) -> list[tuple[int, Path]]:
    """(number, path) of the chunk files, in order."""
    found = ((_CHUNK_RE.match(p.name), p) for p in path.iterdir())
    return sorted((int(m.group(1)), p) for m, p in found if m)


class NpyStore:
    """Writes the slices of one recording directory as numbered chunks."""

    hourly = False  # a chunk may hold records of two hours

    def __init__(self, path: Path, dtype: np.dtype, meta: dict[str, Any]):
        self.path = path
        found = chunks(path)
        self._next = found[-1][0] + 1 if found else 1
        self.recorded = sum(len(np.load(p, mmap_mode="r")) for _, p in found)

    def write(self, records: np.ndarray) -> Path:
        path = self.path / chunk_name(self._next)
        write_atomically(path, lambda f: np.lib.format.write_array(f, records, allow_pickle=False))
        self._next += 1
        return path

    def close(self) -> None:
        """Nothing to finish: every chunk was complete when written."""


def load(path: Path, dtype: np.dtype) -> tuple[np.ndarray, int]:
    """Every chunk's records, in order, and the number of chunks; RecordingError naming a bad one."""
    found = chunks(path)
    numbers = [n for n, _ in found]
    if numbers != list(range(1, len(numbers) + 1)):
        absent = sorted(set(range(1, (numbers[-1] if numbers else 0) + 1)) - set(numbers))
        raise RecordingError(
            f"recording {path}: chunk files missing: {', '.join(chunk_name(n) for n in absent)}"
        )
    parts = [_load_chunk(p, dtype) for _, p in found]
    return (np.concatenate(parts) if parts else np.empty(0, dtype)), len(found)


def _load_chunk(path: Path, dtype: np.dtype) -> np.ndarray:
    try:
        part = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise RecordingError(f"chunk {path} cannot be loaded ({exc}): the file is damaged") from None
    if not isinstance(part, np.ndarray) or part.dtype != dtype or part.ndim != 1:
        raise RecordingError(f"chunk {path} holds {part.dtype} x {part.shape}, not the recording's records")
    return part
