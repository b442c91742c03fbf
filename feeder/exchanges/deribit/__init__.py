"""Deribit: the market-data adapter (pure), channel mapping, credentials, credit costs and the session.

Pure modules (no I/O, no client): `channels` (ring <-> channel), `parse` (payload -> typed update),
`adapter` (the market-data core), `sync` (book sync states), `records` (scratch records),
`credentials`, `auth` (login as data). On top of the connection client: `costs` (its rate-limit table)
and `session` (login, refresh, cancel-on-disconnect, orders); import those from their modules.
"""

from feeder.exchanges.deribit.adapter import DeribitAdapter, Resubscribe
from feeder.exchanges.deribit.channels import ChannelConfig, ChannelMap, Route
from feeder.exchanges.deribit.credentials import Credentials, load_credentials
from feeder.exchanges.deribit.sync import BookSync

PRODUCTION_URL = "wss://www.deribit.com/ws/api/v2"
TESTNET_URL = "wss://test.deribit.com/ws/api/v2"

__all__ = [
    "PRODUCTION_URL",
    "TESTNET_URL",
    "BookSync",
    "ChannelConfig",
    "ChannelMap",
    "Credentials",
    "DeribitAdapter",
    "Resubscribe",
    "Route",
    "load_credentials",
]
