"""Events per second from a counter that only grows, sampled now and then. Pure: (time, count) in.

The rate is taken over the last stretch of at least `every_s` seconds, so samples that come close
together (a heartbeat every 100 ms, a status view several times a second) do not make it jitter; in
between, the last rate stands. `restart()` forgets the last sample when the counter starts again from
zero (a new worker process), keeping the last rate until the next stretch is measured.
"""

from __future__ import annotations


class RateMeter:
    def __init__(self, every_s: float, rate: float = 0.0):
        self.every_s, self.rate = every_s, rate
        self._last: tuple[float, int] | None = None

    def sample(self, now: float, count: int) -> float:
        """Take a sample of the counter; returns the rate now in force."""
        if self._last is None:
            self._last = (now, count)
        elif now - self._last[0] >= self.every_s:
            then, before = self._last
            self.rate = (count - before) / (now - then)
            self._last = (now, count)
        return self.rate

    def restart(self) -> None:
        self._last = None
