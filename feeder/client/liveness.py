"""The heartbeat watchdog: the pure monitor's checks run on one timer, armed for its next deadline.

Nothing ticks between deadlines: a busy link costs one wake-up per `liveness_interval`, an idle one a
wake-up and a ping. Pongs re-arm the timer.
Rules it keeps:
- pings go out on the link the watchdog was started for, and nowhere else; the liveness request
  (`public/test` for Deribit) goes out through `ask`, which sends it on the current link at once;
- before a silence counts, the kernel is asked whether bytes wait unread (a starved event loop must not
  mistake its own lateness for the peer's silence): waiting bytes count as a frame that arrived now;
- a DEAD or ROTATE verdict is handed to `on_verdict` once; the watchdog then stops.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from feeder.client.receive import Inbox
from feeder.client.transport import Link
from feeder.core.heartbeat import HeartbeatMonitor, Verdict

logger = logging.getLogger("feeder.client")


class Watchdog:
    def __init__(
        self,
        monitor: HeartbeatMonitor,
        link: Link,
        inbox: Inbox,
        on_verdict: Callable[[Verdict, str], None],
        ask: Callable[[str], None],
    ):
        self._monitor = monitor
        self._ask = ask
        self._link = link
        self._inbox = inbox
        self._on_verdict = on_verdict
        self._timer: asyncio.TimerHandle | None = None
        self._stopped = False

    def start(self) -> None:
        self._check()

    def stop(self) -> None:
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def pong(self, payload: bytes) -> None:
        if self._stopped:
            return
        self._monitor.pong(payload, time.time())
        self._check()

    def _check(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        monitor, link = self._monitor, self._link
        while not self._stopped:
            now = time.time()
            last_frame = link.last_rx_ns / 1e9
            last_message = self._inbox.last_message_ns / 1e9
            if monitor.overdue(now, last_frame, last_message) and link.unread_bytes():
                last_frame = last_message = now
            verdict, next_at = monitor.check(now, last_frame, last_message)
            if verdict is Verdict.OK:
                if next_at is not None:
                    self._timer = asyncio.get_running_loop().call_later(max(0.0, next_at - now), self._check)
                return
            if verdict is Verdict.PING or verdict is Verdict.PROBE:
                self._ping(monitor.ping_sent(now) if verdict is Verdict.PING else monitor.probe_sent(now))
            elif verdict is Verdict.REQUEST:
                assert monitor.kind.probe_method is not None
                self._ask(monitor.kind.probe_method)
                monitor.request_sent(now)
            else:
                self.stop()
                self._on_verdict(verdict, monitor.reason)

    def _ping(self, payload: bytes) -> None:
        try:
            self._link.ping(payload)
        except Exception as e:  # closing or closed: the transport reports why
            logger.debug("ping failed: %r", e)
