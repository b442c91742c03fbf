"""The connection client: one WebSocket kept alive, JSON-RPC requests, subscriptions, rate limits.

from feeder.client import Client, ClientConfig, Hooks
"""

from feeder.client.config import ClientConfig, RateLimit
from feeder.client.connection import Client
from feeder.client.hooks import EVENT_NAMES, Event, Hooks
from feeder.client.setup import Setup
from feeder.client.sharedbucket import SharedBucket
from feeder.core.failure import Explanation, explain
from feeder.core.recording import metadata, replay
from feeder.core.state import ConnState
from feeder.core.subscriptions import SubscribeResult

__all__ = [
    "EVENT_NAMES",
    "Client",
    "ClientConfig",
    "ConnState",
    "Event",
    "Explanation",
    "Hooks",
    "RateLimit",
    "Setup",
    "SharedBucket",
    "SubscribeResult",
    "explain",
    "metadata",
    "replay",
]
