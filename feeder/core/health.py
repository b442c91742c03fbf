"""Worker health score (0-100) and the routing decision built on it. Pure: numbers in, choice out.

Score = 100 minus penalties, each capped so that no single symptom hides the others:

| symptom                     | penalty                              | why                                         |
|-----------------------------|--------------------------------------|---------------------------------------------|
| not connected               | score is 0                           | it cannot serve anything                    |
| pending requests            | 5 per request, at most 25            | queued work delays the next answer          |
| request latency p99         | 1 per 20 ms above 100 ms, at most 20 | a slow path to the exchange                 |
| recent errors               | 10 per error, fading linearly to 0   | a flapping connection or a refusing account |
|                             | over 60 s, at most 25                |                                             |
| rate-limiter pressure       | none 0, low 5, medium 15, high 25    | a request would wait for credits            |
| missed heartbeats           | 15 per miss, at most 30              | the link may be dying                       |
| data staleness              | 5 per second beyond 2 s, at most 20  | a silent feed is often a half-dead socket   |

Routing picks the highest score among workers that can serve the request (connected; authenticated for
private methods), round robin among equal scores.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

ERROR_DECAY_S = 60.0
PRESSURE_PENALTY = {"none": 0.0, "low": 5.0, "medium": 15.0, "high": 25.0}


@dataclass(frozen=True)
class HealthInputs:
    """What a worker reports about itself (in its heartbeat) plus what the supervisor derived."""

    connected: bool
    pending_requests: int = 0
    latency_p99_ms: float = 0.0
    recent_errors: float = 0.0  # already decayed, see ErrorWindow
    pressure: str = "none"
    heartbeat_misses: int = 0
    data_age_s: float = 0.0


def score(h: HealthInputs) -> int:
    """Health score 0-100 (see the module table)."""
    if not h.connected:
        return 0
    penalty = (
        min(25.0, 5.0 * h.pending_requests)
        + min(20.0, max(0.0, h.latency_p99_ms - 100.0) / 20.0)
        + min(25.0, 10.0 * h.recent_errors)
        + PRESSURE_PENALTY.get(h.pressure, PRESSURE_PENALTY["high"])
        + min(30.0, 15.0 * h.heartbeat_misses)
        + min(20.0, max(0.0, h.data_age_s - 2.0) * 5.0)
    )
    return max(0, round(100.0 - penalty))


class ErrorWindow:
    """Errors seen in the last 60 s, each weighing 1 when fresh and 0 after 60 s."""

    def __init__(self, decay_s: float = ERROR_DECAY_S):
        self._decay = decay_s
        self._times: deque[float] = deque()

    def record(self, now: float) -> None:
        self._times.append(now)

    def weight(self, now: float) -> float:
        while self._times and now - self._times[0] >= self._decay:
            self._times.popleft()
        return sum(1.0 - (now - t) / self._decay for t in self._times)


@dataclass(frozen=True)
class Candidate:
    worker: int
    score: int
    authenticated: bool


class Router:
    """Chooses a worker for a request: best score that can serve it, round robin among equals."""

    def __init__(self) -> None:
        self._turn = 0

    def choose(
        self, candidates: Sequence[Candidate], private: bool, exclude: frozenset[int] = frozenset()
    ) -> int | None:
        able = [
            c
            for c in candidates
            if c.score > 0 and c.worker not in exclude and (c.authenticated or not private)
        ]
        if not able:
            return None
        best = max(c.score for c in able)
        tied = sorted(c.worker for c in able if c.score == best)
        self._turn += 1
        return tied[self._turn % len(tied)]
