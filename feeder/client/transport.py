"""Opening the WebSocket: websockets' client on the event loop, with messages dispatched as parsed.

`DispatchingConnection` hands every complete data frame to a callback inside `data_received`: no queue
and no task switch per message (a bare `recv()` loop pays for both; see scripts/bench_client.py). The
first fragment of a fragmented message switches the connection back to websockets' own assembler for
good (the client's read loop then gets every later message through `recv()`), so the order of
messages is kept either way. Control frames (ping, pong, close) are left to websockets.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.frames import Frame, Opcode

from feeder.client.config import ClientConfig

Dispatch = Callable[[bytes], None]
_DATA = frozenset({Opcode.TEXT, Opcode.BINARY})


class DispatchingConnection(ClientConnection):
    def __init__(self, protocol: Any, *, dispatch: Dispatch, **kwargs: Any):
        super().__init__(protocol, **kwargs)
        self.dispatch: Dispatch | None = dispatch

    def process_event(self, event: Any) -> None:
        dispatch = self.dispatch
        if dispatch is not None and type(event) is Frame and event.opcode in _DATA:
            if event.fin:
                dispatch(event.data)
                return
            self.dispatch = None
        super().process_event(event)


async def open_connection(config: ClientConfig, dispatch: Dispatch) -> DispatchingConnection:
    """Connect and complete the handshake (websockets' own keepalive off: the heartbeat kind rules)."""
    return await websockets.connect(
        config.url,
        additional_headers=dict(config.headers) or None,
        open_timeout=config.connect_timeout,
        close_timeout=config.close_timeout,
        max_size=config.max_frame_size,
        ping_interval=None,
        compression=None,
        create_connection=functools.partial(DispatchingConnection, dispatch=dispatch),
    )
