"""Book sync state per instrument: the states, the events and every allowed transition, in one table.

- AWAITING_SNAPSHOT: subscribed, no snapshot yet (nothing published; changes are skipped).
- LIVE: the book is trustworthy; every applied message is published.
- GAP: readers were told (a GAP record) the book is not trustworthy; changes are skipped until the
  snapshot of the resubscription (or of the restored subscription after a reconnect) arrives.

An event the table does not allow in a state is a bug in the adapter, not bad exchange data, and
raises `InvalidTransition` naming the state and the event.
"""

from __future__ import annotations

import enum
from types import MappingProxyType

from feeder.errors import InvalidTransition


class BookSync(enum.Enum):
    AWAITING_SNAPSHOT = "awaiting_snapshot"
    LIVE = "live"
    GAP = "gap"


class SyncEvent(enum.Enum):
    SNAPSHOT = "snapshot"  # a valid snapshot was applied
    CHANGE = "change"  # a valid change chained onto the last change_id was applied
    BROKEN = "broken"  # gap, bad or inconsistent message: the book can no longer be trusted
    DISCONNECTED = "disconnected"  # the connection dropped: updates may be missed from now on


_A, _L, _G = BookSync.AWAITING_SNAPSHOT, BookSync.LIVE, BookSync.GAP
_S, _C, _B, _D = SyncEvent.SNAPSHOT, SyncEvent.CHANGE, SyncEvent.BROKEN, SyncEvent.DISCONNECTED

TRANSITIONS = MappingProxyType(
    {
        _A: MappingProxyType({_S: _L, _B: _G, _D: _A}),
        _L: MappingProxyType({_S: _L, _C: _L, _B: _G, _D: _G}),
        _G: MappingProxyType({_S: _L, _B: _G, _D: _G}),
    }
)


def next_state(state: BookSync, event: SyncEvent) -> BookSync:
    """The state after `event`, or InvalidTransition when the table does not allow it."""
    allowed = TRANSITIONS[state]
    try:
        return allowed[event]
    except KeyError:
        raise InvalidTransition(
            f"book sync: event {event.value!r} is not allowed in state {state.value!r} "
            f"(allowed: {', '.join(e.value for e in allowed)})"
        ) from None
