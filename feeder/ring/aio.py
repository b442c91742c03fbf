"""Waiting for a ring from an asyncio event loop (asyncio or uvloop): `LoopWaiter`.

One thread per reader sleeps in the kernel (wait.Sleeper) on the loop's behalf and, when there is
something to read, hands the news to the loop with `call_soon_threadsafe`. Rules kept here:
- Nothing polls. The thread is either blocked on its request queue or asleep in FUTEX_WAIT, both
  without the GIL; the loop sees it only when it rings. It makes one request at a time, so a loop
  that does not read never makes it spin.
- Timeouts and cancellation stay on the loop's side (a timer per wait, a future per waiter); the
  thread's request outlives them and serves the next wait.
- `close()` stops the thread and waits for it to be out of the kernel before the caller unmaps.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time

from feeder.ring.wait import Sleeper

_STOP_DEADLINE_S = 10.0
_STOP_POLL_S = 0.001


class LoopWaiter:
    """Waits until a reader has something to read, for coroutines of one event loop at a time."""

    def __init__(self, sleeper: Sleeper, name: str):
        self._sleeper = sleeper
        self._requests: queue.SimpleQueue[tuple[asyncio.AbstractEventLoop, int] | None] = queue.SimpleQueue()
        self._waiters: set[asyncio.Future[bool]] = set()
        self._asked: asyncio.AbstractEventLoop | None = None  # the loop with a request in the thread
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=f"feeder-wait {name}", daemon=True)
        self._thread.start()

    async def wait(self, r: int, timeout: float | None) -> bool:
        """True when the thread saw write_seq move (look again: it may have watched an older r); False on
        timeout, or once the ring or this waiter is closed."""
        if self._stopping:
            return False
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        self._waiters.add(waiter)
        if self._asked is not loop:
            self._asked = loop
            self._requests.put((loop, r))
        timer = None if timeout is None else loop.call_later(max(timeout, 0.0), _settle, waiter, False)
        try:
            return await waiter
        finally:
            self._waiters.discard(waiter)
            if timer is not None:
                timer.cancel()

    def _run(self) -> None:
        stopping = self._is_stopping
        while (request := self._requests.get()) is not None:
            loop, r = request
            ready = self._sleeper.sleep(r, None, stopping)
            with contextlib.suppress(RuntimeError):  # that loop was closed meanwhile
                loop.call_soon_threadsafe(self._ring, loop, ready)
            if self._stopping:
                return

    def _is_stopping(self) -> bool:
        return self._stopping

    def _ring(self, loop: asyncio.AbstractEventLoop, ready: bool) -> None:
        """In the loop: the thread is free again; every waiter of this loop looks again (`ready`), or
        learns that the ring was closed."""
        if self._asked is loop:
            self._asked = None
        for waiter in list(self._waiters):
            if waiter.get_loop() is loop:
                _settle(waiter, ready and not self._stopping)

    def close(self) -> None:
        """Stop the thread (waiting for it to leave the kernel) and end every pending wait with False."""
        if self._stopping:
            return
        self._stopping = True
        self._requests.put(None)
        deadline = time.monotonic() + _STOP_DEADLINE_S
        while self._thread.is_alive() and time.monotonic() < deadline:
            self._sleeper.interrupt()  # again and again: it may have been on its way into the kernel
            self._thread.join(_STOP_POLL_S)
        if not self._thread.is_alive():
            self._sleeper.close()
        for waiter in list(self._waiters):
            with contextlib.suppress(RuntimeError):  # its loop is closed: nobody awaits it
                waiter.get_loop().call_soon_threadsafe(_settle, waiter, False)


def _settle(waiter: asyncio.Future[bool], value: bool) -> None:
    if not waiter.done():
        waiter.set_result(value)
