"""Where a request goes, what a worker lost under it means, and how long the supervisor may take. Pure.

Rules it keeps:
- A worker's score (`core.health.score`) comes from its last heartbeat plus what the supervisor knows
  (requests in flight, recent errors). A worker that is not running, or whose heartbeat is older than
  `HB_STALE_S`, scores 0: it cannot serve now (it is killed only later, at `hang_timeout`).
- A request goes to the best-scoring worker that can serve it (`core.health.Router`); one that needs
  credentials is refused by name when the feeder has none.
- When the worker dies under a request: a read-only request fails over to the next worker it has not
  tried; anything else was sent at most once and its outcome is unknown (never retried).
- The supervisor answers every request within its own timeout plus `answer_margin(hang_timeout)`: a
  worker enforces the timeout itself; one that stops answering is killed after `hang_timeout`, and its
  requests fail once the exit is seen (`EXIT_SEEN_S`). FeederHandle learns the margin in the handshake.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from feeder.core.health import Candidate, HealthInputs, Router, score
from feeder.core.workers import WorkerState, WorkerView

HB_STALE_S = 1.0  # no heartbeat for this long: do not route requests there (killed at hang_timeout)
EXIT_SEEN_S = 1.0  # from killing a hung worker to its requests failing (the exit is noticed)


def answer_margin(hang_timeout: float) -> float:
    """Seconds beyond a request's own timeout within which the supervisor always answers it."""
    return hang_timeout + EXIT_SEEN_S


def worker_score(worker: WorkerView, now: float) -> int:
    """The worker's health score now, 0 to 100 (0: do not route anything there)."""
    h = worker.health
    if worker.state is not WorkerState.RUNNING or not h or now - worker.last_hb > HB_STALE_S:
        return 0
    return score(
        HealthInputs(
            connected=bool(h.get("connected")),
            pending_requests=int(h.get("pending", 0)) + worker.inflight,
            latency_p99_ms=float(h.get("latency_p99_ms", 0.0)),
            recent_errors=worker.recent_errors,
            pressure=str(h.get("pressure", "none")),
            heartbeat_misses=int(h.get("heartbeat_misses", 0)),
            data_age_s=float(h.get("data_age_s", 0.0)),
        )
    )


def candidates(workers: Iterable[WorkerView], now: float) -> list[Candidate]:
    """The running workers as the router sees them."""
    return [
        Candidate(w.index, worker_score(w, now), bool(w.health.get("authenticated")))
        for w in workers
        if w.state is WorkerState.RUNNING
    ]


def refusal(method: str, private: bool, has_credentials: bool) -> str | None:
    """Why the feeder cannot send `method` at all (None: it can)."""
    if private and not has_credentials:
        return (
            f"{method} needs Deribit credentials and this feeder has none: set DERIBIT_CLIENT_ID and "
            f"DERIBIT_CLIENT_SECRET (or a credentials file) before starting it, or use --sim"
        )
    return None


class Loss(enum.Enum):
    FAIL_OVER = "fail_over"  # read-only: try the next worker
    OUTCOME_UNKNOWN = "outcome_unknown"  # sent at most once: the caller must reconcile


@dataclass
class Attempts:
    """One request's way through the workers: which one next, and what losing one under it means."""

    private: bool
    read_only: bool
    tried: set[int] = field(default_factory=set)

    def choose(self, workers: Sequence[WorkerView], now: float, router: Router) -> int | None:
        """The worker to send it to now (None: no worker can serve it)."""
        index = router.choose(candidates(workers, now), self.private, frozenset(self.tried))
        if index is not None:
            self.tried.add(index)
        return index

    def lost(self) -> Loss:
        """The worker it was sent to died before answering."""
        return Loss.FAIL_OVER if self.read_only else Loss.OUTCOME_UNKNOWN


def nobody(method: str, workers: Iterable[WorkerView], now: float) -> str:
    """The NoHealthyWorker message: every worker's state and score."""
    states = ", ".join(f"worker {w.index}: {w.state.value}, score {worker_score(w, now)}" for w in workers)
    return f"no worker can serve {method} now ({states or 'no workers'})"
