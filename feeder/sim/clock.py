"""The exchange's clock: simulated time, which may run faster than the wall clock or jump ahead.

Pure: the wall clock comes in as an argument. Simulated time starts at `start_ms` (the wall clock
when None) and runs `speed` times as fast as the wall clock; `advance` jumps it forward. It is
what the exchange says the time is: message timestamps, `public/get_time`, instrument creation,
expiry and settlement. It never goes back, so tests can make a week of expiries happen in seconds
without reordering anything. The simulator's own measurements (send times, usIn/usOut, heartbeats,
rate limits, idle timeouts) stay on the wall clock.
"""

from __future__ import annotations

import math
import time

from feeder.errors import ConfigError

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
EXPIRY_HOUR = 8  # Deribit settles every expiry at 08:00 UTC


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class SimClock:
    __slots__ = ("_base_sim", "_base_wall", "speed")

    def __init__(self, start_ms: int | None, speed: float, wall: int):
        if not (isinstance(speed, int | float) and math.isfinite(speed) and speed > 0):
            raise ConfigError("clock_speed", speed, "expected a number > 0 (simulated seconds per second)")
        self._base_wall = wall
        self._base_sim = wall if start_ms is None else start_ms
        self.speed = float(speed)

    def now(self, wall: int) -> int:
        """Simulated ms since the epoch at wall-clock ms `wall`."""
        return self._base_sim + int((wall - self._base_wall) * self.speed)

    def advance(self, ms: int, wall: int) -> int:
        """Jump `ms` (>= 0) ahead; the new simulated time."""
        if ms < 0:
            raise ValueError("the clock does not go back")
        self._base_sim, self._base_wall = self.now(wall) + ms, wall
        return self._base_sim

    def set_speed(self, speed: float, wall: int) -> None:
        if not (math.isfinite(speed) and speed > 0):
            raise ValueError("speed must be a number > 0")
        self._base_sim, self._base_wall, self.speed = self.now(wall), wall, float(speed)


def next_expiry_hour(ms: int) -> int:
    """The first 08:00 UTC strictly after `ms`."""
    day = ms - ms % DAY_MS + EXPIRY_HOUR * HOUR_MS
    return day if day > ms else day + DAY_MS


def expiry_hours(after: int, until: int) -> list[int]:
    """Every 08:00 UTC in (after, until]: the moments the listing can change."""
    out = []
    t = next_expiry_hour(after)
    while t <= until:
        out.append(t)
        t += DAY_MS
    return out
