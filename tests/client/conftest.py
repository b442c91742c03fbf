"""A simulator per test for the connection client's tests (in its own process, real sockets)."""

from __future__ import annotations

import pytest
from client.clientkit import CREDENTIALS, INSTRUMENT

from feeder.sim import SimServer


@pytest.fixture
def sim():
    with SimServer(
        instruments=[INSTRUMENT], rate=0, seed=7, credentials=CREDENTIALS, min_heartbeat_interval=1.0
    ) as server:
        yield server
