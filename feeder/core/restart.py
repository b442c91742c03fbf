"""When to restart a dead or hung worker, and when to stop trying. Pure: times in, decision out.

The first restart is immediate (a killed worker should be back within a second); repeated failures back
off exponentially up to a cap. More than `max_restarts` within `window_s` means the worker cannot stay up
(bad credentials, a crash on start): the supervisor gives up on that worker, says so loudly, and keeps
the others running.
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
    ):
        self.max_restarts, self.window_s = max_restarts, window_s
        self.base_delay_s, self.max_delay_s = base_delay_s, max_delay_s
        self._restarts: deque[float] = deque()

    def on_failure(self, now: float) -> RestartDecision:
        """A worker died or hung at `now`: restart after `delay_s`, or give up."""
        while self._restarts and now - self._restarts[0] > self.window_s:
            self._restarts.popleft()
        recent = len(self._restarts)
        if recent >= self.max_restarts:
            return RestartDecision(give_up=True)
        self._restarts.append(now)
        delay = 0.0 if recent == 0 else min(self.max_delay_s, self.base_delay_s * 2 ** (recent - 1))
        return RestartDecision(give_up=False, delay_s=delay)

    @property
    def restarts_in_window(self) -> int:
        return len(self._restarts)
