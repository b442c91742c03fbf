"""Suite-wide fixtures: every test runs in its own feeder instance, and leaves no segments behind."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from feeder.ring.names import ENV_INSTANCE, SHM_DIR


def _segments(instance: str) -> list[Path]:
    return sorted(Path(SHM_DIR).glob(f"feeder.{instance}.*"))


@pytest.fixture(autouse=True)
def instance(monkeypatch: pytest.MonkeyPatch):
    """A unique instance namespace per test; fails the test if it leaves shared memory behind."""
    name = f"t{os.getpid()}{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv(ENV_INSTANCE, name)
    yield name
    leftovers = _segments(name)
    for path in leftovers:
        path.unlink(missing_ok=True)
    assert not leftovers, f"test left shared-memory segments behind: {[p.name for p in leftovers]}"
