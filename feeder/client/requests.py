"""The requests of one client: rate-limit admission, JSON-RPC ids and deadlines, answers, failures.

The asyncio shell around three pure objects: the limiter (feeder.core.ratelimit), the correlator
(feeder.core.correlator) and the latency window (feeder.core.latency). Rules it keeps:
- admission is first in, first out; a request still queued at its deadline fails as not sent;
- one timer, armed for the earliest deadline, times requests out one by one;
- a frame is marked sent once the transport accepted it for an open connection: if the send itself
  fails the request may still have reached the exchange, and the error says so;
- failing is explicit: pending requests fail with ConnectionLost(sent=...), queued ones as not sent;
- the exchange asking us to slow down (failure.asks_to_slow_down) is acted on whether its answer
  carries the request's id, a stale one or null: counted by code, the credits drained (the drain the
  reconnect uses too), a close before the credits refill understood as rate-limited, reported.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson
from websockets.exceptions import ConnectionClosed, InvalidState

from feeder.client.config import RateLimit
from feeder.client.sharedbucket import SharedBucket
from feeder.core import failure
from feeder.core.correlator import Correlator, outcome
from feeder.core.latency import LatencyWindow
from feeder.core.ratelimit import DEFAULT, Bucket, Limiter, TokenBucket, cost_function
from feeder.errors import ConnectionLost, ExchangeError, RateLimited, RequestTimeout

SendFrame = Callable[[bytes], Awaitable[None]]
SLOW_DOWN_WINDOW_S = 10.0  # without a limiter to say when credits refill
SlowedDown = Callable[[ExchangeError, float | None], None]  # the error, seconds until credits are full


def make_limiter(rl: RateLimit | None, never_wait: Iterable[str]) -> Limiter | None:
    """The limiter for `rl` (None: no limits); `never_wait` methods (heartbeat answers) get credits
    held in reserve so that they never queue."""
    if rl is None:
        return None
    limits = {DEFAULT: (rl.capacity, rl.refill_per_s), **rl.buckets}
    buckets: dict[str, Bucket] = {}
    for name, (capacity, refill) in limits.items():
        if rl.shared_dir is None:
            buckets[name] = TokenBucket.full(capacity, refill, time.monotonic())
        else:
            file = rl.shared_name if name == DEFAULT else f"{rl.shared_name}.{name}"
            buckets[name] = SharedBucket(rl.shared_dir, file, capacity, refill)
    limiter = Limiter(buckets, cost_function(rl.cost, "rate_limit.cost"), rl.max_queue)
    for method in never_wait:
        name, cost = limiter.charge(method)
        limiter.reserve[name] = max(limiter.reserve.get(name, 0.0), cost)
    return limiter


class Requests:
    def __init__(
        self,
        limiter: Limiter | None,
        latency_window: int,
        on_pressure: Callable[[str, int], None],
        on_slowed_down: SlowedDown,
    ):
        self.limiter = limiter
        self.correlator = Correlator()
        self.latency = LatencyWindow(latency_window)
        self._slow_until = 0.0  # monotonic: a close before this answers a slow-down (credits refilling)
        self.rate_limit_events: Counter[str] = Counter()  # by error code
        self.errors_without_id: Counter[str] = Counter()  # by error code, other than rate limits
        self.unmatched_answers = 0
        self._on_pressure = on_pressure
        self._on_slowed_down = on_slowed_down
        self._pressure = "none"
        self._pump: asyncio.Task[None] | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self._expiry_at = 0.0

    # --- admission -------------------------------------------------------------------------------

    async def admit(self, method: str, deadline: float) -> None:
        """Return when the limiter lets `method` go; RateLimited if the queue is full or the deadline
        passes first (either way the request was not sent)."""
        limiter = self.limiter
        if limiter is None:
            return
        entry = limiter.admit(method, time.monotonic())
        if entry is None:
            return
        ticket = entry.ticket = asyncio.get_running_loop().create_future()
        self._pressure_changed()
        if self._pump is None:
            self._pump = asyncio.create_task(self._release(limiter), name="feeder-client-limiter")
        try:
            await asyncio.wait_for(ticket, max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            limiter.withdraw(entry)
            raise RateLimited(
                f"{method}: still waiting for rate-limit credits at its timeout; the request was not sent"
            ) from None
        except BaseException:
            limiter.withdraw(entry)
            raise
        finally:
            self._pressure_changed()

    async def _release(self, limiter: Limiter) -> None:
        try:
            while True:
                ready, wait = limiter.release(time.monotonic())
                for entry in ready:
                    if not entry.ticket.done():
                        entry.ticket.set_result(None)
                if not limiter.queue:
                    return
                await asyncio.sleep(wait)
        finally:
            self._pump = None

    def _pressure_changed(self) -> None:
        assert self.limiter is not None
        level = self.limiter.pressure()
        if level != self._pressure:
            self._pressure = level
            self._on_pressure(level, len(self.limiter.queue))

    def spend_now(self, method: str) -> None:
        """Charge a reply that must go at once (a heartbeat answer) without queueing it."""
        if self.limiter is not None:
            self.limiter.force(method, time.monotonic())

    def overspent(self) -> float | None:
        """The exchange said we overspent: empty the buckets; seconds until full (None: no limiter)."""
        return None if self.limiter is None else self.limiter.drain(time.monotonic())

    # --- correlation -----------------------------------------------------------------------------

    async def call(self, method: str, params: Any, deadline: float, timeout: float, send: SendFrame) -> Any:
        """Send one request with `send` and return its result (or raise its error)."""
        now = time.monotonic()
        if deadline <= now:
            raise RateLimited(
                f"{method}: its timeout passed before it could be sent; the request was not sent"
            )
        waiter = asyncio.get_running_loop().create_future()
        p = self.correlator.track(method, timeout, now, waiter, deadline)
        frame = orjson.dumps(
            {"jsonrpc": "2.0", "id": p.id, "method": method, "params": {} if params is None else params}
        )
        try:
            await send(frame)
        except (ConnectionClosed, InvalidState) as e:
            self.correlator.discard(p)
            raise ConnectionLost(method, sent=True, reason=f"send failed: {e}") from e
        p.sent = True
        self._arm_expiry(p.deadline)
        try:
            return await waiter
        except asyncio.CancelledError:
            self.correlator.discard(p)
            raise

    def answer(self, msg: dict[str, Any]) -> str | None:
        """Hand an answer to its request. None when it was dealt with (a pending request's answer, or
        the exchange asking us to slow down, whatever its id); else what the stray answer is, for the
        receive path to count and log: "error_without_id" or "unmatched_answer"."""
        msg_id = msg["id"]
        p = None if msg_id is None else self.correlator.resolve(msg_id)
        if p is None:
            return self._stray(msg)
        self.latency.add(time.monotonic() - p.sent_at)
        result, error = outcome(msg, p.method)
        if isinstance(error, ExchangeError) and failure.asks_to_slow_down(error):
            self.slowed_down(error)
        if p.waiter.done():
            return None
        if error is None:
            p.waiter.set_result(result)
        else:
            p.waiter.set_exception(error)
        return None

    def _stray(self, msg: dict[str, Any]) -> str | None:
        _, error = outcome(msg, None)
        if not isinstance(error, ExchangeError):
            self.unmatched_answers += 1
            return "unmatched_answer"
        if failure.asks_to_slow_down(error):
            self.slowed_down(error)
            return None
        if msg["id"] is None:
            self.errors_without_id[str(error.code)] += 1
            return "error_without_id"
        self.unmatched_answers += 1
        return "unmatched_answer"

    def slowed_down(self, error: ExchangeError) -> None:
        """The exchange asked us to slow down: count it, drain the credits, mark the connection so its
        coming close is understood as rate-limited, and report it."""
        self.rate_limit_events[str(error.code)] += 1
        refill_s = self.overspent()
        window = SLOW_DOWN_WINDOW_S if refill_s is None else max(refill_s, 1.0)
        self._slow_until = max(self._slow_until, time.monotonic() + window)
        self._on_slowed_down(error, refill_s)

    @property
    def rate_limited(self) -> bool:
        """Whether a close now is the exchange's answer to a slow-down: one came and the credits have
        not refilled since. An overload answer that left the session open does not make a later,
        unrelated drop wait for credits."""
        return time.monotonic() < self._slow_until

    def forget_slow_down(self) -> None:
        """A new connection: what the old one was told no longer explains its close."""
        self._slow_until = 0.0

    def _arm_expiry(self, deadline: float) -> None:
        if self._expiry is None or deadline < self._expiry_at:
            if self._expiry is not None:
                self._expiry.cancel()
            self._expiry_at = deadline
            delay = max(0.0, deadline - time.monotonic())
            self._expiry = asyncio.get_running_loop().call_later(delay, self._expire)

    def _expire(self) -> None:
        self._expiry = None
        for p in self.correlator.expire(time.monotonic()):
            if not p.waiter.done():
                p.waiter.set_exception(RequestTimeout(p.method, p.timeout))
        following = self.correlator.next_deadline()
        if following is not None:
            self._arm_expiry(following)

    # --- failing everything ----------------------------------------------------------------------

    def waiting_for_answers(self) -> list[asyncio.Future[Any]]:
        return [p.waiter for p in self.correlator.pending() if p.sent]

    def fail_pending(self, reason: str) -> None:
        """The connection is gone: every request waiting for an answer fails now."""
        for p in self.correlator.fail_all():
            if not p.waiter.done():
                p.waiter.set_exception(ConnectionLost(p.method, p.sent, reason))

    def fail_queued(self, reason: str) -> None:
        """The client stopped: every request still queued for credits fails as not sent."""
        if self.limiter is None:
            return
        while self.limiter.queue:
            entry = self.limiter.queue.popleft()
            if entry.ticket is not None and not entry.ticket.done():
                entry.ticket.set_exception(ConnectionLost(entry.method, sent=False, reason=reason))

    def stop(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None

    def stats(self) -> dict[str, Any]:
        return {
            "pending_requests": len(self.correlator),
            "request_timeouts": self.correlator.timeouts,
            "unmatched_answers": self.unmatched_answers,
            "rate_limit_events": dict(self.rate_limit_events),
            "errors_without_id": dict(self.errors_without_id),
            "limiter": None if self.limiter is None else self.limiter.stats(time.monotonic()),
        }
