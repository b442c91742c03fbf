"""The live book audit, as arithmetic: is the book we published at a change_id the exchange's own?

Chaining (`prev_change_id`) finds missing messages, never corrupt ones; only the exchange's own snapshot
can. Two pure objects, time passed in (ns for books, s for the schedule), no I/O:

- `BookAudit` (one per book) keeps, while an audit request is out (`start` to `check`), the top-N
  levels (the exact bytes of a ring record's level arrays) of the change_ids published as valid since
  the last one before the request (at most `WINDOW`), and judges the exchange's snapshot with them:
  its change_id in the window: compare, PASSED or FAILED; ahead of the stream: PENDING until the
  stream reaches that change_id (then compared), passes it without stopping there, or `wait_ns` runs
  out (UNVERIFIABLE); older than the window, between two published change_ids (an aggregated stream
  skips some), or while the book is not live: UNVERIFIABLE. Every audit ends in exactly one of
  passed, failed or unverifiable, each counted (unverifiable by reason).
- `AuditSchedule` spreads audits evenly over time and books: with n books and an interval T per book,
  one audit every T/n seconds, round robin, the first T/(2n) after the start but never more than
  FIRST_AUDIT_S (a wrong book found in the first seconds, not a minute in); a late loop never bursts
  to catch up. `spare_budget` says from the rate limiter's stats whether an audit may go now.
A snapshot is never older than what the exchange had sent before the request, so nothing older than
that is needed: a book that is not being audited keeps no window at all (no copy on the hot path).
"""

from __future__ import annotations

import enum
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

from feeder.core.ratelimit import DEFAULT
from feeder.errors import ConfigError

SPARE_FRACTION = 0.5  # an audit goes only while the default rate-limit bucket is at least this full
WINDOW = 64  # published change_ids remembered while an audit of the book is out (320 bytes each at depth 10)


class Verdict(enum.Enum):
    PASSED = "passed"
    FAILED = "failed"
    PENDING = "pending"
    UNVERIFIABLE = "unverifiable"


@dataclass(frozen=True)
class Failure:
    """A mismatch: our levels and the exchange's at the same change_id (bytes of the record's arrays)."""

    change_id: int
    ours: bytes
    theirs: bytes


class AuditFigures(TypedDict):
    """One book's audit counts, as `feeder status` and the metrics show them."""

    passed: int
    failed: int
    unverifiable: int
    pending: bool  # an exchange snapshot waits for the stream to reach its change_id
    last_passed_ns: int  # 0: none yet
    unverifiable_reasons: dict[str, int]


class BookAudit:
    """Audit state of one book (see the module doc)."""

    __slots__ = (
        "failed",
        "last_failure",
        "last_passed_ns",
        "passed",
        "pending",
        "reasons",
        "recording",
        "unverifiable",
        "window",
    )

    def __init__(self, window: int = WINDOW):
        self.window: deque[tuple[int, bytes]] = deque(maxlen=window)
        self.pending: tuple[int, bytes, int] | None = None  # (change_id, levels, deadline_ns)
        self.passed = self.failed = self.unverifiable = 0
        self.reasons: Counter[str] = Counter()
        self.last_passed_ns = 0
        self.last_failure: Failure | None = None
        self.recording = False  # an audit request is out: published levels go into the window

    def start(self, change_id: int, levels: bytes) -> None:
        """An audit request goes out now: remember the levels published at `change_id` (the last valid
        record) and every valid one after it until the answer is checked."""
        self.window.clear()
        self.window.append((change_id, levels))
        self.recording = True

    def published(self, change_id: int, levels: bytes, now_ns: int) -> Verdict | None:
        """A valid record was published; returns the verdict of a pending audit it settles, if any.
        (A hot path may append to `window` itself while `recording`, and call `settle` only while
        `pending` is set.)"""
        if self.recording:
            self.window.append((change_id, levels))
        return None if self.pending is None else self.settle(change_id, levels, now_ns)

    def settle(self, change_id: int, levels: bytes, now_ns: int) -> Verdict | None:
        """The stream moved on to `change_id` while an audit is pending: judge it if it can be."""
        pending = self.pending
        assert pending is not None
        if change_id == pending[0]:
            self.pending = None
            return self._judge(change_id, levels, pending[1], now_ns)
        if change_id > pending[0]:
            return self._settle_unverifiable("the stream passed the snapshot's change_id without stopping")
        if now_ns > pending[2]:
            return self._settle_unverifiable("the stream did not reach the snapshot's change_id in time")
        return None

    def check(self, change_id: int, levels: bytes, now_ns: int, wait_ns: int) -> Verdict:
        """Judge the exchange's snapshot of the book at `change_id` (PENDING: wait for the stream); the
        window is no longer needed after this (a pending snapshot is judged against the stream)."""
        self.recording = False
        if self.pending is not None:
            self._settle_unverifiable("superseded by a newer audit")
        if not self.window:
            return self.not_verifiable("no valid book to compare")
        newest = self.window[-1][0]
        if change_id > newest:
            self.pending = (change_id, levels, now_ns + wait_ns)
            return Verdict.PENDING
        for cid, ours in reversed(self.window):
            if cid == change_id:
                return self._judge(change_id, ours, levels, now_ns)
            if cid < change_id:
                return self.not_verifiable("the snapshot's change_id was never published on this stream")
        return self.not_verifiable("the snapshot is older than the audit window")

    def reset(self, reason: str) -> Verdict | None:
        """The book stopped being trustworthy (gap, resync, disconnect): forget its history."""
        self.window.clear()
        self.recording = False
        return self._settle_unverifiable(reason) if self.pending is not None else None

    def not_verifiable(self, reason: str) -> Verdict:
        """An audit that cannot be judged (also: the request failed, the answer was bad)."""
        self.recording = False
        return self._unverifiable(reason)

    def _settle_unverifiable(self, reason: str) -> Verdict:
        """A pending snapshot cannot be judged (an audit out for a newer request keeps its window)."""
        self.pending = None
        return self._unverifiable(reason)

    def _unverifiable(self, reason: str) -> Verdict:
        self.unverifiable += 1
        self.reasons[reason] += 1
        return Verdict.UNVERIFIABLE

    def _judge(self, change_id: int, ours: bytes, theirs: bytes, now_ns: int) -> Verdict:
        if ours == theirs:
            self.passed += 1
            self.last_passed_ns = now_ns
            return Verdict.PASSED
        self.failed += 1
        self.last_failure = Failure(change_id, ours, theirs)
        return Verdict.FAILED

    def figures(self) -> AuditFigures:
        return {
            "passed": self.passed,
            "failed": self.failed,
            "unverifiable": self.unverifiable,
            "pending": self.pending is not None,
            "last_passed_ns": self.last_passed_ns,
            "unverifiable_reasons": dict(self.reasons),
        }


FIRST_AUDIT_S = 5.0  # the first audit after the start at the latest, however few the books


class AuditSchedule:
    """When to audit which book: evenly spread, round robin (see the module doc)."""

    def __init__(self, books: Sequence[str], interval_s: float, start_s: float):
        if not books:
            raise ConfigError("audit books", books, "at least one book to audit")
        if not interval_s > 0:
            raise ConfigError("audit_interval", interval_s, "seconds per book > 0")
        self.books = list(books)
        self.step = interval_s / len(self.books)
        self.next_at = start_s + min(self.step / 2, FIRST_AUDIT_S)
        self._i = 0

    def head(self) -> tuple[str, float]:
        """The next book to audit and when."""
        return self.books[self._i], self.next_at

    def advance(self, now_s: float) -> None:
        """The head's audit went out (or was given up): the next book, one step later, never in the past."""
        self._i = (self._i + 1) % len(self.books)
        self.next_at = max(self.next_at + self.step, now_s)

    def postpone(self, until_s: float) -> None:
        """The head cannot be audited now (no budget, not live): try the same book again at `until_s`."""
        self.next_at = max(self.next_at, until_s)


def spare_budget(limiter: Mapping[str, Any] | None, fraction: float = SPARE_FRACTION) -> bool:
    """Whether a request of the lowest priority may go now, from the rate limiter's stats (`Limiter.stats`:
    queued, credits and capacity per bucket): nothing waits, and the default bucket holds at least
    `fraction` of its capacity (so the request is admitted at once and leaves plenty for everything else)."""
    if limiter is None:
        return True
    if limiter.get("queued"):
        return False
    credits, capacity = limiter["credits"].get(DEFAULT), limiter["capacity"].get(DEFAULT)
    return credits is None or credits >= fraction * capacity
