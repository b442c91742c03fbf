"""One client WebSocket connection as the simulator sees it: who it is and what it is owed.

State only (no I/O of its own): its subscriptions, authentication, heartbeat bookkeeping, pending
faults and its outgoing buffer. The hub appends encoded frames to `out` and writes them to the
transport in one call per flush; a stalled session discards what it would have been sent.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

from feeder.sim.auth import Grant

if TYPE_CHECKING:
    from feeder.sim.faults import RateLimitFault

_OPEN = State.OPEN


def text_frame(payload: bytes) -> bytes:
    """An unmasked, uncompressed final text frame (what a server sends), header and payload."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return b"\x81\x7e" + n.to_bytes(2, "big") + payload
    return b"\x81\x7f" + n.to_bytes(8, "big") + payload


class Session:
    __slots__ = (
        "book_faults", "client_name", "close_cancels", "closing", "cod", "conn", "dropped", "grant", "hb_delay", "hb_delay_count", "hb_drop",
        "hb_interval", "hb_pending", "hb_task", "held", "id", "in_dirty", "last_recv", "opened_ns",
        "out", "peer", "rate_limit_next", "requests", "sent", "stall_pongs", "stalled_until", "stamps", "subs",
    )  # fmt: skip

    def __init__(self, sid: int, conn: ServerConnection, cod: bool):
        self.id = sid
        self.conn = conn
        peer = conn.remote_address
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self.opened_ns = time.time_ns()
        self.last_recv = time.monotonic()
        self.grant: Grant | None = None
        self.client_name: str | None = None  # what the client said in public/hello (fault targeting)
        self.subs: set[str] = set()
        self.cod = cod
        self.close_cancels = True  # False after private/logout: cancel-on-disconnect does not fire
        self.closing = False  # the simulator decided to close it: nothing more is read or sent
        self.hb_interval: float | None = None
        self.hb_task: asyncio.Task[None] | None = None
        self.hb_pending = False
        self.hb_drop = 0
        self.hb_delay = 0.0
        self.hb_delay_count = 0
        self.book_faults: dict[int, deque[str]] = {}
        self.held: dict[int, bytes] = {}
        self.stalled_until: float | None = None
        self.stall_pongs = False  # while stalled, the WebSocket layer still answers pings
        self.rate_limit_next: RateLimitFault | None = None
        self.out: list[bytes] = []
        self.stamps: list[Any] = []  # (feed, change_id, prev) of book messages it was first to get
        self.in_dirty = False
        self.requests = 0
        self.sent = 0
        self.dropped = 0

    @property
    def account(self) -> str | None:
        return self.grant.client_id if self.grant is not None else None

    @property
    def is_open(self) -> bool:
        return self.conn.protocol.state is _OPEN

    @property
    def ip(self) -> str:
        peer = self.conn.remote_address
        return peer[0] if peer else "?"

    def stalled(self, now: float) -> bool:
        if self.stalled_until is None:
            return False
        if now >= self.stalled_until:
            self.stalled_until = None
            return False
        return True

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "peer": self.peer,
            "client_name": self.client_name,
            "subscriptions": sorted(self.subs),
            "authenticated": self.grant is not None,
            "client_id": self.account,
            "heartbeat": self.hb_interval,
            "cancel_on_disconnect": self.cod,
            "stalled": self.stalled_until is not None,
            "requests": self.requests,
            "frames_sent": self.sent,
            "frames_dropped": self.dropped,
            "opened_ns": self.opened_ns,
        }
