"""The account's own rate limits, asked once at start; the configured tier when it cannot tell."""

from __future__ import annotations

import asyncio
import socket

from feeder.exchanges.deribit.costs import Limit
from feeder.exchanges.deribit.credentials import Credentials
from feeder.runtime.account import account_costs
from feeder.sim import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, SimServer

DEMO = Credentials(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)


def _ask(url: str, credentials: Credentials | None, tier: int = 4):
    return asyncio.run(asyncio.wait_for(account_costs(url, credentials, tier), 60))


def test_the_accounts_limits_are_used_and_a_bad_login_falls_back_to_the_tier_saying_why():
    with SimServer(instruments=["BTC-PERPETUAL"], rate=0, matching_limit=(10.0, 30.0)) as sim:
        costs, why = _ask(sim.ws_url, DEMO)
        assert costs.source == "account" and costs.matching_limit() == Limit(10.0, 30.0)
        assert "get_account_summary" in why
        costs, why = _ask(sim.ws_url, Credentials(DEMO_CLIENT_ID, "wrong-secret"), tier=3)
        assert costs.source == "tier 3" and "unavailable" in why


def test_without_credentials_or_an_exchange_the_configured_tier_is_in_force():
    costs, why = _ask("ws://127.0.0.1:9/ws/api/v2", None, tier=2)
    assert costs.source == "tier 2" and "no credentials" in why
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    costs, why = _ask(f"ws://127.0.0.1:{port}/ws/api/v2", DEMO)
    assert costs.source == "tier 4" and "unavailable" in why
