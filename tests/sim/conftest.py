"""Fixtures: a quiet simulator per test (rate 0: books move only when the test publishes) and clients."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sim.kit import Rpc

from feeder.sim import SimServer

BTC = "BTC-PERPETUAL"
ETH = "ETH-PERPETUAL"


@pytest.fixture
def sim() -> Iterator[SimServer]:
    with SimServer(instruments=[BTC, ETH], rate=0, seed=7, min_heartbeat_interval=0.5) as server:
        yield server


@pytest.fixture
def connect(sim: SimServer) -> Iterator[Callable[..., Rpc]]:
    """Open raw JSON-RPC clients to `sim`; all closed after the test."""
    opened: list[Rpc] = []

    def open_client(**kwargs) -> Rpc:
        client = Rpc(sim.ws_url, **kwargs)
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        client.close()
