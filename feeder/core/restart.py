"""When to restart a dead or hung worker, and when to stop trying. Pure: times in, decision out.

A worker that dies after running stably (`stable_s`) is restarted at once: a killed worker should be
back within a second. Failures in quick succession back off exponentially up to a cap. More than
`max_restarts` within `window_s` means the worker cannot stay up (bad credentials, a crash on start):
the supervisor gives up on that worker, says so loudly, and keeps the others running.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class RestartDecision:
    give_up: bool
    delay_s: float = 0.0


class RestartPolicy:
    def __init__(
        self,
        max_restarts: int = 5,
        window_s: float = 60.0,
        base_delay_s: float = 0.25,
        max_delay_s: float = 5.0,
        stable_s: float = 10.0,
    ):
        self.max_restarts, self.window_s = max_restarts, window_s
        self.base_delay_s, self.max_delay_s, self.stable_s = base_delay_s, max_delay_s, stable_s
        self._restarts: deque[float] = deque()
        self._quick_failures = 0

    def on_failure(self, now: float, started: float) -> RestartDecision:
        """The worker started at `started` died or hung at `now`: restart after `delay_s`, or give up."""
        while self._restarts and now - self._restarts[0] > self.window_s:
            self._restarts.popleft()
        if len(self._restarts) >= self.max_restarts:
            return RestartDecision(give_up=True)
        self._restarts.append(now)
        self._quick_failures = 0 if now - started >= self.stable_s else self._quick_failures + 1
        if self._quick_failures == 0:
            return RestartDecision(give_up=False)
        delay = self.base_delay_s * 2 ** (self._quick_failures - 1)
        return RestartDecision(give_up=False, delay_s=min(self.max_delay_s, delay))

    @property
    def restarts_in_window(self) -> int:
        return len(self._restarts)
