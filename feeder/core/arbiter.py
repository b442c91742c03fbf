"""Redundant connections as arithmetic: which copy of each change is published, and which legs feed a book.

With `redundancy = 2` every channel arrives on two connections (legs 0 and 1) of one worker. One arbiter per
stream (a book, trades or ticker channel) decides, for each copy that arrives, from plain data (the leg, the
copy's ids, what was published, times in ns); no I/O:

- Books (`Chain`: change_ids chained by prev_change_id). The first copy that chains onto the published book
  wins and is applied; a later copy (change_id <= the book's) is dropped and counted as that leg's loss, with
  how far behind the winner it came. A copy ahead of the book (a hole on its leg) is held, at most `HOLD_NS`
  and `HOLD_MAX` copies per book, while another joined leg may fill the hole; once it is filled the held
  copies that chain on are applied in order. A hole that nobody fills in time (every leg missed that change),
  or a copy ahead with no other leg joined, breaks the book: GAP and resync, as with one connection.
- Legs per book (`LegState`, one table below). A leg feeds a book only while JOINED. A leg whose connection
  dropped, or whose book was resynced, waits for its own snapshot and rejoins when that snapshot equals what
  was published at the same change_id (the caller compares, with `feeder.core.audit.BookAudit`'s window); a
  snapshot ahead of the book is compared when the book gets there. While no leg is joined the book is not
  live, and the first snapshot to arrive becomes the book.
- Trades (`Sequence`: consecutive trade_seq). The first copy of each trade_seq wins; a trade beyond the next
  one is held the same way while another leg is up, then published with its gap flagged.
- Tickers and mark prices (`Stamps`: exchange timestamps in ms). The k-th message with a given timestamp is
  published once, from whichever leg brings it first; older ones are dropped.
- `LegStats` counts per leg (over every stream of a worker): wins, losses and how far behind the winner the
  losses came (a histogram of µs in powers of two, and the sum), copies held, holes filled, holds that ran
  out, copies ignored while not joined, snapshots that matched the live book (a leg joining).
Times are the copies' receive times (ns, any clock, the same for every leg).
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Sequence as Seq
from types import MappingProxyType
from typing import Any

from feeder.errors import InvalidTransition

HOLD_NS = 50_000_000  # how long a copy ahead of the book waits for another leg to fill the hole
HOLD_MAX = 64  # copies held per stream at most; one more breaks the book
RECENT = 64  # winners remembered per stream, to tell how far behind a loser came
BEHIND_BUCKETS = 26  # bucket b counts losses behind by [2**(b-1), 2**b) µs; bucket 0: under 1 µs


class Offer(enum.IntEnum):
    """What to do with a copy."""

    APPLY = 0  # it is the next change: apply and publish it
    DUPLICATE = 1  # another leg's copy was published already: drop it (counted)
    HOLD = 2  # ahead of the book: `hold` it until another leg fills the hole, or `HOLD_NS` passes
    HOLE = 3  # ahead of the book and nobody can fill the hole: the book is broken
    IGNORE = 4  # its leg does not feed this book now (not joined): drop it (counted)
    OVERLAP = 5  # it spans changes the book already has: its leg is out of step with the book


class LegState(enum.Enum):
    JOINED = "joined"  # its copies feed the book
    WAITING = "waiting"  # for its own snapshot (a new connection or subscription)
    VERIFYING = "verifying"  # its snapshot is ahead of the book: compared when the book gets there


class LegEvent(enum.Enum):
    DOWN = "down"  # its connection dropped
    RESYNC = "resync"  # the book broke, or its subscription is renewed: a fresh snapshot comes
    LOADED = "loaded"  # its snapshot became the book (no leg was joined)
    MATCHED = "matched"  # its snapshot equals what was published at that change_id
    AHEAD = "ahead"  # its snapshot is ahead of the book
    UNVERIFIABLE = "unverifiable"  # its snapshot cannot be compared (outside the window): subscribe again


_J, _W, _V = LegState.JOINED, LegState.WAITING, LegState.VERIFYING
_E = LegEvent
TRANSITIONS = MappingProxyType(
    {
        _J: MappingProxyType({_E.DOWN: _W, _E.RESYNC: _W, _E.LOADED: _J}),
        _W: MappingProxyType(
            {_E.DOWN: _W, _E.RESYNC: _W, _E.LOADED: _J, _E.MATCHED: _J, _E.AHEAD: _V, _E.UNVERIFIABLE: _W}
        ),
        _V: MappingProxyType({_E.DOWN: _W, _E.RESYNC: _W, _E.MATCHED: _J, _E.UNVERIFIABLE: _W}),
    }
)


def next_leg_state(state: LegState, event: LegEvent) -> LegState:
    """The leg's state after `event`, or InvalidTransition when the table does not allow it."""
    allowed = TRANSITIONS[state]
    try:
        return allowed[event]
    except KeyError:
        raise InvalidTransition(
            f"leg: event {event.value!r} is not allowed in state {state.value!r} "
            f"(allowed: {', '.join(e.value for e in allowed)})"
        ) from None


class LegStats:
    """What one leg did, over every stream of its worker."""

    __slots__ = (
        "behind",
        "behind_ns",
        "duplicates",
        "expired",
        "filled",
        "held",
        "ignored",
        "losses",
        "matched",
        "wins",
    )

    def __init__(self) -> None:
        self.wins = self.losses = self.duplicates = self.behind_ns = 0
        self.held = self.filled = self.expired = self.ignored = self.matched = 0
        self.behind = [0] * BEHIND_BUCKETS  # losses by how far behind the winner, µs in powers of two

    def lost(self, behind_ns: int) -> None:
        """A copy that came `behind_ns` after the winning copy of the same change."""
        self.losses += 1
        self.behind_ns += behind_ns
        us = behind_ns // 1000
        self.behind[min(us.bit_length(), BEHIND_BUCKETS - 1) if us > 0 else 0] += 1

    def as_dict(self) -> dict[str, Any]:
        timed = sum(self.behind)
        return {
            "wins": self.wins,
            "losses": self.losses,
            "duplicates": self.duplicates,
            "behind_mean_us": round(self.behind_ns / timed / 1000, 1) if timed else None,
            "behind_p50_us": behind_percentile(self.behind, 0.5),
            "behind_p99_us": behind_percentile(self.behind, 0.99),
            "behind": list(self.behind),
            "held": self.held,
            "filled": self.filled,
            "expired": self.expired,
            "ignored": self.ignored,
            "matched": self.matched,
        }


def behind_percentile(histogram: Seq[int], q: float) -> int | None:
    """The `q` quantile of a `LegStats.behind` histogram (or a difference of two), as its bucket's upper
    bound in µs (a power of two: at most twice the true value); None when it counts nothing."""
    total = sum(histogram)
    if total <= 0:
        return None
    rank, seen = q * total, 0
    for bucket, count in enumerate(histogram):
        seen += count
        if seen >= rank and count:
            return 1 << bucket
    return 1 << (len(histogram) - 1)


class _Arbiter:
    """What every stream's arbiter shares: its legs' counters, the winners it remembers, held copies."""

    __slots__ = ("deadline", "held", "hold_max", "hold_ns", "recent", "stats")

    def __init__(self, stats: Seq[LegStats], hold_ns: int = HOLD_NS, hold_max: int = HOLD_MAX):
        self.stats = stats
        self.hold_ns, self.hold_max = hold_ns, hold_max
        self.held: dict[int, tuple[int, int, Any, int]] = {}  # key -> (id, leg, payload, recv_ns)
        self.deadline = 0  # when the oldest held copy stops waiting
        self.recent: deque[tuple[Any, int, int]] = deque(maxlen=RECENT)  # (id, recv_ns, leg) of winners

    def won(self, leg: int, ident: Any, recv_ns: int) -> None:
        """The copy from `leg` was published."""
        self.stats[leg].wins += 1
        self.recent.append((ident, recv_ns, leg))

    def dropped(self, leg: int, ident: Any, recv_ns: int) -> None:
        """A copy of an id already published (the caller found it so): a loss, timed against the winner."""
        self._lost(leg, ident, recv_ns)

    def _lost(self, leg: int, ident: Any, recv_ns: int) -> None:
        """A copy of an id already published: a loss, timed against the winner when it is remembered."""
        recent = self.recent
        while recent and recent[0][0] < ident:
            recent.popleft()
        stats = self.stats[leg]
        if recent and recent[0][0] == ident:
            winner = recent[0]
            if winner[2] == leg:
                stats.duplicates += 1  # the winner's own leg sent it again
                return
            recent.popleft()
            stats.lost(max(0, recv_ns - winner[1]))
            return
        stats.losses += 1  # its winner is no longer remembered: a loss, untimed

    def hold(self, key: int, ident: int, leg: int, payload: Any, recv_ns: int) -> None:
        """Keep a copy that is ahead (`key`: the id it follows) until it chains on, or time runs out."""
        held = self.held
        if key in held:  # the other leg's copy of the same change waits already
            self._lost(leg, ident, recv_ns)
            return
        if not held:
            self.deadline = recv_ns + self.hold_ns
        held[key] = (ident, leg, payload, recv_ns)
        self.stats[leg].held += 1

    def expired(self, now_ns: int) -> bool:
        """Whether the oldest held copy has waited `hold_ns`: the hole will not be filled."""
        return bool(self.held) and now_ns >= self.deadline

    def take_held(self) -> list[tuple[int, int, Any, int]]:
        """Every held copy, oldest id first (they stopped waiting: expired, or the stream was reset)."""
        held = sorted(self.held.values(), key=lambda entry: entry[0])
        for entry in held:
            self.stats[entry[1]].expired += 1
        self.held.clear()
        return held

    def release(self, last: int) -> tuple[int, int, Any, int] | None:
        """The held copy that follows `last` (the id published last) now, as (id, leg, payload, recv_ns),
        or None; copies the stream has passed meanwhile are dropped (losses)."""
        if not self.held:
            return None
        entry = self.held.pop(last, None)
        if entry is None:
            self._drop_passed(last)
            return None
        self.stats[entry[1]].filled += 1
        if self.held:
            self.deadline = min(e[3] for e in self.held.values()) + self.hold_ns
        return entry

    def _drop_passed(self, passed: int) -> None:
        """Held copies the stream has passed meanwhile (another leg brought them): losses."""
        for key in [key for key, entry in self.held.items() if entry[0] <= passed]:
            ident, leg, _, recv_ns = self.held.pop(key)
            self._lost(leg, ident, recv_ns)
        if self.held:
            self.deadline = min(e[3] for e in self.held.values()) + self.hold_ns


class Chain(_Arbiter):
    """One book channel's arbiter: change_ids chained by prev_change_id (see the module doc)."""

    __slots__ = ("joined", "legs")

    def __init__(self, stats: Seq[LegStats], hold_ns: int = HOLD_NS, hold_max: int = HOLD_MAX):
        super().__init__(stats, hold_ns, hold_max)
        self.legs = [LegState.WAITING] * len(stats)
        self.joined = 0  # legs JOINED

    def event(self, leg: int, event: LegEvent) -> LegState:
        """A leg's event for this book; returns its new state."""
        before = self.legs[leg]
        after = self.legs[leg] = next_leg_state(before, event)
        self.joined += (after is _J) - (before is _J)
        if after is _J and before is not _J and event is not LegEvent.LOADED:
            self.stats[leg].matched += 1
        return after

    def offer(self, leg: int, change_id: int, prev: int, last: int, recv_ns: int) -> Offer:
        """What to do with a change (`change_id` after `prev`) from `leg`, the live book being at `last`."""
        if self.legs[leg] is not _J:
            self.stats[leg].ignored += 1
            return Offer.IGNORE
        if change_id <= last:
            self._lost(leg, change_id, recv_ns)
            return Offer.DUPLICATE
        if prev == last:
            return Offer.APPLY
        if prev < last:
            return Offer.OVERLAP
        if self.joined > 1 and (len(self.held) < self.hold_max or prev in self.held):
            return Offer.HOLD
        return Offer.HOLE


class Sequence(_Arbiter):
    """One trades channel's arbiter: consecutive sequence numbers (trade_seq)."""

    __slots__ = ("up",)

    def __init__(self, stats: Seq[LegStats], hold_ns: int = HOLD_NS, hold_max: int = HOLD_MAX):
        super().__init__(stats, hold_ns, hold_max)
        self.up = [True] * len(stats)  # legs whose connection carries the channel

    def offer(self, leg: int, seq: int, last: int, recv_ns: int) -> Offer:
        """What to do with trade `seq` from `leg`, `last` being the last trade_seq published (-1: none)."""
        if last < 0 or seq == last + 1:
            return Offer.APPLY
        if seq <= last:
            self._lost(leg, seq, recv_ns)
            return Offer.DUPLICATE
        if sum(self.up) > 1 and (len(self.held) < self.hold_max or seq - 1 in self.held):
            return Offer.HOLD
        return Offer.HOLE


class Stamps(_Arbiter):
    """One ticker (or mark price) channel's arbiter: the k-th message with a timestamp is published once."""

    __slots__ = ("count", "last", "seen")

    def __init__(self, stats: Seq[LegStats]):
        super().__init__(stats)
        self.last = -1  # the newest timestamp published
        self.count = 0  # messages published with it
        self.seen = [(-1, 0)] * len(stats)  # per leg: its newest timestamp and how many it brought

    def offer(self, leg: int, timestamp: int, recv_ns: int) -> bool:
        """Whether the message from `leg` with `timestamp` is to be published (the caller then calls won)."""
        seen_ts, seen = self.seen[leg]
        nth = seen + 1 if timestamp == seen_ts else 1
        self.seen[leg] = (timestamp, nth)
        if timestamp > self.last or (timestamp == self.last and nth > self.count):
            self.last, self.count = timestamp, nth
            return True
        self._lost(leg, (timestamp, nth), recv_ns)
        return False

    def won(self, leg: int, ident: Any, recv_ns: int) -> None:
        super().won(leg, (self.last, self.count), recv_ns)
