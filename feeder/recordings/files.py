"""File names and the atomic write every recording file goes through.

Rule kept here: a file is written to a hidden temporary name in its directory, synced, then renamed, and
the directory is synced: a visible name always holds a complete file. A crash leaves at most a hidden
`.<name>.tmp`, which loaders ignore and the next writer in that directory removes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from feeder.errors import FeederError

META, EVENTS = "meta.json", "events.jsonl"
TMP_SUFFIX = ".tmp"


class RecordingError(FeederError):
    """A recording is incomplete, damaged or inconsistent; the message names the file or seq range."""


def temporaries(path: Path) -> list[Path]:
    """The unfinished files a crashed writer left in `path`."""
    return sorted(p for p in path.iterdir() if p.name.startswith(".") and p.name.endswith(TMP_SUFFIX))


def temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}{TMP_SUFFIX}")


def sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def finish(tmp: Path, path: Path) -> None:
    """Sync a complete temporary file and rename it into place (then sync the directory)."""
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    sync_dir(path.parent)


def write_atomically(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write `path` through a temporary file: after a crash it is either complete or absent."""
    tmp = temporary(path)
    with open(tmp, "wb") as f:
        write(f)
    finish(tmp, path)
