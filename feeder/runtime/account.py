"""The account's own request limits, asked once at start: log in, `private/get_account_summary`, close.

Deribit's limits are per account and depend on its tier; the account says what they are. The supervisor
asks before starting the workers (which then build their shared rate-limit buckets from the answer);
when it cannot be asked (no credentials) or the answer does not come or makes no sense, the configured
tier is used, and the reason is kept for `status`. One short connection, no retries.
"""

from __future__ import annotations

import asyncio
import logging

from feeder.client import Client, ClientConfig, Hooks
from feeder.errors import BadMessage, FeederError
from feeder.exchanges.deribit.costs import DeribitCosts
from feeder.exchanges.deribit.credentials import Credentials
from feeder.exchanges.deribit.session import DeribitSession, SessionConfig

log = logging.getLogger("feeder.account")

ASK_TIMEOUT_S = 10.0
CURRENCY = "BTC"  # limits are per account; any currency's summary carries them


async def account_costs(url: str, credentials: Credentials | None, tier: int) -> tuple[DeribitCosts, str]:
    """(the limits in force, why they are the ones): the account's, or the configured tier's."""
    fallback = DeribitCosts(tier)
    if credentials is None:
        return fallback, f"configured tier {tier} (no credentials: the account cannot be asked)"
    try:
        limits = await asyncio.wait_for(_ask(url, credentials), ASK_TIMEOUT_S)
        costs = DeribitCosts.from_account(limits, fallback_tier=tier)
    except (FeederError, TimeoutError, OSError) as exc:
        why = f"configured tier {tier} (the account's limits are unavailable: {type(exc).__name__}: {exc})"
        log.warning("rate limits: %s", why)
        return fallback, why
    why = "the account's own limits (private/get_account_summary)"
    log.info("rate limits: %s: %s", why, costs.figures())
    return costs, why


async def _ask(url: str, credentials: Credentials) -> object:
    session = DeribitSession(SessionConfig(credentials=credentials, cancel_on_disconnect=None))
    config = ClientConfig(url=url, heartbeat="none", reconnect_on_error=False, connect_timeout=ASK_TIMEOUT_S)
    client = Client(config, hooks=Hooks(on_connected=session.on_connected))
    session.bind(client)
    try:
        await client.connect()
        summary = await session.rpc("private/get_account_summary", {"currency": CURRENCY})
    finally:
        await client.close()
        await session.close()
    if type(summary) is not dict:
        raise BadMessage("get_account_summary", summary, "an object")
    return summary.get("limits")
