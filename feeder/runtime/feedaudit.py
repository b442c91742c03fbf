"""A feed's live audit: when to ask the exchange for a book's snapshot, and whether it may go now.

One `public/get_order_book` at a time, on the feed's (first) connection, spread evenly over time and books
by `feeder.core.audit.AuditSchedule`, with depth at least the ring's levels. The lowest priority of the
connection: an audit goes only while connected, with no resync running and with rate-limit credits to
spare (`spare_budget`), so it never queues in front of an order, a subscription or a resync. The adapter
judges the answer; what it emits (a GAP on a mismatch) and the resync it asks for go back to the feed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from feeder.core.audit import AuditSchedule, spare_budget
from feeder.core.state import ConnState
from feeder.errors import FeederError
from feeder.exchanges.deribit.adapter import DeribitAdapter

if TYPE_CHECKING:
    from feeder.runtime.feed import Feed

log = logging.getLogger(__name__)

AUDIT_RETRY_S = 1.0  # an audit that may not go now tries again this much later


class FeedAudit:
    """The audit loop of one `Feed` (`run()` as its task); `books_changed` redoes the schedule."""

    def __init__(self, feed: Feed):
        self.feed = feed
        self.sent = 0
        self.deferred: Counter[str] = Counter()  # why an audit waited for its next chance
        self.books_changed = asyncio.Event()  # book channels came or went

    async def run(self) -> None:
        adapter, interval = self.feed.adapter, self.feed.config.audit_interval
        schedule: AuditSchedule | None = None
        self.books_changed.set()
        while True:
            if self.books_changed.is_set():
                self.books_changed.clear()
                books = adapter.audit_channels
                schedule = AuditSchedule(books, interval, time.monotonic()) if books else None
            if schedule is None:
                await self.books_changed.wait()
                continue
            channel, at = schedule.head()
            with contextlib.suppress(TimeoutError):  # a change of books wakes it early
                await asyncio.wait_for(self.books_changed.wait(), max(0.0, at - time.monotonic()))
            if self.books_changed.is_set() or channel not in adapter.routes:
                continue
            now = time.monotonic()
            blocked = self.blocked()
            if blocked:
                self.deferred[blocked] += 1
                schedule.postpone(now + min(AUDIT_RETRY_S, schedule.step))
                continue
            schedule.advance(now)
            if not adapter.auditable(channel):
                self.deferred["book not live"] += 1
                continue
            try:
                await self._audit(channel)
            except Exception:  # a bug must not end the audits silently, nor the worker
                log.exception("audit of %s failed", channel)

    def blocked(self) -> str | None:
        """Why no audit may go now (None: it may): the lowest priority on this connection."""
        feed = self.feed
        if feed.client.state is not ConnState.CONNECTED:
            return "not connected"
        if feed.resyncing() or feed.adapter.requests:
            return "resync in progress"
        if not spare_budget(feed.client.metrics().get("limiter")):
            return "rate-limit budget"
        return None

    async def _audit(self, channel: str) -> None:
        feed, adapter = self.feed, self.feed.adapter
        route = adapter.routes[channel]
        self.sent += 1
        adapter.audit_started(channel)
        try:
            result = await feed.client.request("public/get_order_book", DeribitAdapter.audit_params(route))
        except FeederError as exc:
            adapter.audit_unverifiable(channel, f"request failed: {type(exc).__name__}")
            return
        feed.judged(adapter.audit(channel, result, time.time_ns()))

    def metrics(self) -> dict[str, Any]:
        return {"sent": self.sent, "deferred": dict(self.deferred)}
