"""What an exchange adapter plugs into the client, and the events the client reports.

The client knows JSON-RPC 2.0 and WebSockets, not venues. An adapter hands it `Hooks`:
- `on_connected(setup)`: awaited after every (re)connect, after the heartbeat is set up and before
  subscriptions are restored: authenticate, enable cancel-on-disconnect, whatever the venue needs
  first. `setup.request(...)` goes out at once on that connection (the client's own requests wait
  until setup and restore are done); `setup.client` is the client. If it raises, the connection is
  dropped and the error classified (bad credentials stop the retries).
- `on_disconnected()`: called once each time a connection that opened is lost (sync or async), whether
  it was live, still setting up or restoring: reset per-connection state (books, auth tokens).
- `subscribe_method(channel)` / `unsubscribe_method(channel)`: the JSON-RPC method for a channel
  (e.g. a public and a private one); a string means the same for every channel.
- `max_channels_per_request`: subscribe/unsubscribe requests are split into chunks of this size.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from feeder.errors import UsageError

if TYPE_CHECKING:
    from feeder.client.setup import Setup

MethodFor = Callable[[str], str]


@dataclass(frozen=True)
class Hooks:
    on_connected: Callable[[Setup], Awaitable[None]] | None = None
    on_disconnected: Callable[[], Any] | None = None
    subscribe_method: str | MethodFor | None = None
    unsubscribe_method: str | MethodFor | None = None
    max_channels_per_request: int = 100

    def method_for(self, action: str) -> MethodFor:
        """The channel -> method function for "subscribe" or "unsubscribe"; UsageError if not given."""
        spec = self.subscribe_method if action == "subscribe" else self.unsubscribe_method
        if spec is None:
            raise UsageError(
                f"no {action} method configured: pass Hooks({action}_method=...) (a method name or a "
                "function channel -> method) from the exchange adapter"
            )
        if callable(spec):
            return spec
        method = spec
        return lambda _channel: method


@dataclass(frozen=True, slots=True)
class Event:
    """A lifecycle change, for metrics and the supervisor. `name` is one of EVENT_NAMES."""

    name: str
    time_ns: int
    data: dict[str, Any] = field(default_factory=dict)


EVENT_NAMES = frozenset(
    {
        "state",  # every state change: {"from", "to"}
        "connected",  # set up and ready: {"url", "attempt"}
        "disconnected",  # a connection that opened ended: {"reason", "category"}
        "reconnecting",  # waiting before the next attempt: {"delay", "attempt", "reason"}
        "gave_up",  # stopped retrying: {"reason", "advice", "fatal"}
        "subscribed",  # {"channels"}
        "subscription_refused",  # {"refused": {channel: reason}}
        "unsubscribed",  # {"channels"}
        "heartbeat_dead",  # the watchdog replaced the link: {"reason"}
        "bad_input",  # malformed or unexpected frames (throttled): {"kind", "count", "suppressed"}
        "pressure",  # the rate limiter's pressure level changed: {"level", "queued"}
        # the exchange asked us to slow down (any id), credits drained:
        # {"code", "message", "method" (None: no request id), "refill_s", "count"}
        "rate_limited",
        "closed",  # close() finished
    }
)
