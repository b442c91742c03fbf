"""Against the real Deribit testnet. These skip themselves without network (always the case on the
project's build machines) and, for the private part, without DERIBIT_CLIENT_ID/DERIBIT_CLIENT_SECRET."""

from __future__ import annotations

import asyncio
import os
import socket

import numpy as np
import pytest

from feeder import GAP, SNAPSHOT, RingReader
from feeder.client import ClientConfig
from feeder.exchanges.deribit import load_credentials
from feeder.exchanges.deribit.costs import DeribitCosts
from feeder.exchanges.deribit.session import SessionConfig
from feeder.runtime.config import TESTNET_URL
from feeder.runtime.feed import Feed, FeedConfig

pytestmark = pytest.mark.network
HOST = "test.deribit.com"


def _reachable() -> bool:
    try:
        socket.create_connection((HOST, 443), timeout=3).close()
        return True
    except OSError:
        return False


@pytest.fixture(scope="module", autouse=True)
def network():
    if not _reachable():
        pytest.skip(f"{HOST}:443 is not reachable from here")


def _config(credentials=None) -> FeedConfig:
    client = ClientConfig(url=TESTNET_URL, heartbeat="deribit", rate_limit=DeribitCosts().rate_limit())
    return FeedConfig(client=client, rings=("book.BTC",), session=SessionConfig(credentials=credentials))


def test_testnet_public_book_starts_with_a_snapshot_and_chains():
    async def body() -> np.ndarray:
        async with Feed(_config()):
            with RingReader("book.BTC", start="oldest") as reader:
                got: list[np.ndarray] = []
                for _ in range(300):
                    got.append(reader.read())
                    if sum(map(len, got)) >= 20:
                        break
                    await asyncio.sleep(0.1)
                return np.concatenate(got)

    records = asyncio.run(body())
    assert len(records) >= 20 and records[0]["flags"] & SNAPSHOT
    live = records[1:][(records[1:]["flags"] & (GAP | SNAPSHOT)) == 0]
    assert np.all(live["change_id"] > live["prev_change_id"])
    assert np.all(records["bid_px"][:, 0] < records["ask_px"][:, 0])


@pytest.mark.skipif(not os.environ.get("DERIBIT_CLIENT_ID"), reason="no Deribit testnet credentials")
def test_testnet_login_and_private_request():
    async def body() -> list:
        async with Feed(_config(load_credentials())) as feed:
            return await feed.session.get_open_orders_by_instrument("BTC-PERPETUAL")

    assert isinstance(asyncio.run(body()), list)
