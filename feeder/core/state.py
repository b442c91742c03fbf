"""Connection states of the client and the only transitions allowed between them.

The table below is the whole state machine: the client asks `advance(current, target)` for every change,
so a transition that is not listed fails loudly (InvalidTransition names both states) instead of leaving
the client in a state nobody planned for.

    idle ──connect──▶ connecting ──ready──▶ connected ──lost──▶ reconnecting ──retry──▶ connecting
                          │                     │                     │
                          └───── closing ◀──────┴─────────────────────┘ ──▶ closed ──connect──▶ connecting
"""

from __future__ import annotations

from enum import Enum

from feeder.errors import InvalidTransition


class ConnState(Enum):
    IDLE = "idle"
    CONNECTING = "connecting"  # opening the socket or running the post-connect setup
    CONNECTED = "connected"  # set up (heartbeat, hooks, subscriptions restored): requests flow
    RECONNECTING = "reconnecting"  # waiting out a backoff delay before the next attempt
    CLOSING = "closing"  # close() was called
    CLOSED = "closed"  # closed by the caller, or gave up (fatal error, retries exhausted)


_ALLOWED: dict[ConnState, frozenset[ConnState]] = {
    ConnState.IDLE: frozenset({ConnState.CONNECTING, ConnState.CLOSED}),
    ConnState.CONNECTING: frozenset(
        {ConnState.CONNECTED, ConnState.RECONNECTING, ConnState.CLOSING, ConnState.CLOSED}
    ),
    ConnState.CONNECTED: frozenset({ConnState.RECONNECTING, ConnState.CLOSING, ConnState.CLOSED}),
    ConnState.RECONNECTING: frozenset({ConnState.CONNECTING, ConnState.CLOSING, ConnState.CLOSED}),
    ConnState.CLOSING: frozenset({ConnState.CLOSED}),
    ConnState.CLOSED: frozenset({ConnState.CONNECTING}),
}


def allowed(current: ConnState) -> frozenset[ConnState]:
    """States reachable from `current` in one step."""
    return _ALLOWED[current]


def advance(current: ConnState, target: ConnState) -> ConnState:
    """Return `target` if the table allows current → target, else raise InvalidTransition."""
    if target not in _ALLOWED[current]:
        names = ", ".join(sorted(s.value for s in _ALLOWED[current])) or "nothing"
        raise InvalidTransition(
            f"connection state {current.value!r} cannot go to {target.value!r}; allowed: {names}"
        )
    return target
