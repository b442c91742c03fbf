"""FeederHandle requests to the exchange, through the workers: route, forward, fail over or give up.

The decisions are `core.routing`'s (which worker, what a loss means, the answer margin) and
`exchanges.methods`' (what is private, what is read-only); this moves the request to a worker's pipe
and its answer back. Rules it keeps:
- One answer per request, always within its timeout plus `answer_margin(hang_timeout)`.
- Read-only requests fail over when their worker dies; everything else is sent at most once and a lost
  answer is `OutcomeUnknown` carrying the order's label.
- An answer that is a network failure or an unknown outcome counts against the worker's score.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from typing import Any

from feeder import errors
from feeder.core.health import Router
from feeder.core.routing import Attempts, Loss, answer_margin, nobody, refusal
from feeder.core.workers import WorkerState
from feeder.exchanges.methods import is_private, is_read_only
from feeder.runtime.handle import BOOK_METHOD
from feeder.runtime.supervisor.pool import WorkerPool
from feeder.runtime.supervisor.slots import Slot, WorkerLost
from feeder.runtime.wire import error_from_wire

log = logging.getLogger("feeder.supervisor")


class Requests:
    def __init__(
        self,
        pool: WorkerPool,
        hang_timeout: float,
        has_credentials: bool,
        book_ring: Callable[[str], tuple[str, str | None]],
    ):
        """`book_ring(name)`: the instrument a name or alias stands for and the ring of its book."""
        self.pool, self.has_credentials, self.book_ring = pool, has_credentials, book_ring
        self.margin = answer_margin(hang_timeout)
        self.router = Router()
        self._ids = itertools.count(1)

    async def send(self, method: str, params: dict[str, Any], timeout: float) -> Any:
        """The exchange's result for `method`, or the error that says why there is none."""
        private = is_private(method)
        refused = refusal(method, private, self.has_credentials)
        if refused is not None:
            raise errors.NotAuthenticated(refused)
        attempts = Attempts(private, is_read_only(method))
        while True:
            now = time.monotonic()
            workers = [s.view(now) for s in self.pool.slots]
            index = attempts.choose(workers, now, self.router)
            if index is None:
                raise errors.NoHealthyWorker(nobody(method, workers, now))
            slot = self.pool.slots[index]
            try:
                return await self._forward(slot, method, params, timeout)
            except WorkerLost as exc:
                if attempts.lost() is Loss.FAIL_OVER:
                    log.info("%s: worker %d died, failing over", method, slot.index)
                    continue
                raise errors.OutcomeUnknown(
                    method, params.get("label"), f"worker {slot.index} died: {exc}"
                ) from None

    async def book(self, params: dict[str, Any], timeout: float) -> Any:
        """`feeder/book`: asked of the worker whose ring holds the instrument's book (it answers from
        memory, no exchange request); no fail over: no other worker keeps that book."""
        name = params.get("instrument")
        if not isinstance(name, str):
            raise errors.UsageError(
                f"{BOOK_METHOD}: instrument must be an instrument name or alias, got {name!r}"
            )
        instrument, ring = self.book_ring(name)
        slot = None if ring is None else next((s for s in self.pool.slots if ring in s.rings), None)
        if slot is None:
            raise errors.UsageError(f"{BOOK_METHOD}: this feeder keeps no book of {name!r}")
        if slot.state is not WorkerState.RUNNING:
            raise errors.NoHealthyWorker(
                f"{BOOK_METHOD}: worker {slot.index}, which keeps {ring}, is {slot.state.value}"
            )
        try:
            return await self._forward(
                slot, BOOK_METHOD, {"instrument": instrument, "depth": params.get("depth")}, timeout
            )
        except WorkerLost as exc:
            raise errors.NoHealthyWorker(
                f"{BOOK_METHOD}: worker {slot.index}, which keeps {ring}: {exc}"
            ) from None

    async def _forward(self, slot: Slot, method: str, params: dict[str, Any], timeout: float) -> Any:
        rid = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        slot.inflight[rid] = future
        message = {"type": "rpc", "id": rid, "method": method, "params": params, "timeout": timeout}
        if not self.pool.tell(slot, message):
            slot.inflight.pop(rid, None)
            raise WorkerLost("its pipe is closed")
        try:
            # the worker enforces `timeout` itself; the margin only covers a worker that stopped answering
            reply = await asyncio.wait_for(future, timeout + self.margin)
        except TimeoutError:
            slot.inflight.pop(rid, None)
            raise WorkerLost("no answer from the worker") from None
        slot.served += 1
        if "error" in reply:
            error = error_from_wire(reply["error"])
            if isinstance(error, errors.NetworkError | errors.OutcomeUnknown):
                slot.errors.record(time.monotonic())
            raise error
        return reply.get("result")
