"""The watchdog loop: every 50 ms, read what the workers said, ask `core.watchdog` who is hung, act.

It kills; the pool's exit handling then marks the rings GAP and restarts the worker. The only thing it
asks the kernel is whether a silent worker is stopped (SIGSTOP), and only when the verdict needs it.
"""

from __future__ import annotations

import asyncio
import time

from feeder.core.watchdog import Action, sweep
from feeder.runtime.supervisor.pool import WorkerPool

WATCH_EVERY_S = 0.05


async def watch(pool: WorkerPool, hang_timeout: float) -> None:
    """Run until cancelled."""
    while True:
        await asyncio.sleep(WATCH_EVERY_S)
        for slot in pool.slots:
            pool.drain(slot)
        now = time.monotonic()
        for verdict in sweep([s.view(now) for s in pool.slots], now, hang_timeout):
            slot = pool.slots[verdict.index]
            if verdict.action is Action.KILL or pool.stopped_by_kernel(slot):
                pool.kill(slot, verdict.reason)
