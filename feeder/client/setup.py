"""What the adapter's `on_connected` hook gets: a way to send on the connection being set up.

Until the client is `connected` (setup and restore done) its ordinary requests wait; the hook's must
go out at once (log in, enable cancel-on-disconnect) and so must the restore's. `Setup.request` sends
on the one connection it was made for, still rate limited, and fails with ConnectionLost(sent=False)
once that connection is gone: a setup request never leaks onto the next connection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from feeder.client.connection import Client


class Setup:
    def __init__(self, client: Client, connection: int):
        self.client = client
        self.connection = connection  # which connection of this client (1, 2, ...)

    async def request(self, method: str, params: Any = None, timeout: float | None = None) -> Any:
        """Send a JSON-RPC request on this connection now and return its result (as Client.request)."""
        return await self.client._request_on(self.connection, method, params, timeout)

    def __repr__(self) -> str:
        return f"Setup(connection={self.connection})"
