"""JSON-RPC 2.0 request/response correlation: ids, pending requests, deadlines, outcomes as data.

Rules it keeps:
- ids are integers, increasing from 1 for the life of the client (never reused after a reconnect, so a
  late answer from an old connection cannot be taken for a new request's);
- each pending request has its own deadline; `expire(now)` hands back the ones past it;
- `sent` records whether the request left the process, so a connection loss can say whether the
  exchange may have acted on it;
- an answer for an unknown id (late, after its timeout, or null) resolves to None, never raises: the
  shell decides what it was (a stray rate-limit answer, an error without an id, a late answer).
Deadlines live in a heap; resolved entries are skipped lazily when they reach its top.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any

from feeder.errors import ExchangeError, RemoteProtocolError


@dataclass(slots=True)
class Pending:
    id: int
    method: str
    deadline: float
    timeout: float
    sent_at: float
    waiter: Any  # the shell's future; the correlator never touches it
    sent: bool = False


def outcome(msg: dict[str, Any], method: str | None) -> tuple[Any, Exception | None]:
    """(result, None) for a success, (None, error) for an error object or a malformed answer."""
    if "result" in msg:
        return msg["result"], None
    err = msg.get("error")
    if isinstance(err, dict) and isinstance(err.get("code"), int):
        return None, ExchangeError(err["code"], str(err.get("message", "")), err.get("data"), method)
    return None, RemoteProtocolError(
        f"{method}: answer has neither 'result' nor a valid 'error': {msg!r:.200}"
    )


class Correlator:
    def __init__(self) -> None:
        self._next_id = 0
        self._pending: dict[int, Pending] = {}
        self._deadlines: list[tuple[float, int]] = []
        self.timeouts = 0

    def track(
        self, method: str, timeout: float, now: float, waiter: Any = None, deadline: float | None = None
    ) -> Pending:
        """Register a new request and return it (with its fresh id). It expires at `deadline` if given
        (the caller's time already spent waiting counts), else `timeout` from now."""
        self._next_id += 1
        p = Pending(
            self._next_id, method, now + timeout if deadline is None else deadline, timeout, now, waiter
        )
        self._pending[p.id] = p
        heapq.heappush(self._deadlines, (p.deadline, p.id))
        return p

    def resolve(self, msg_id: Any) -> Pending | None:
        """The pending request answered by `msg_id`, removed; None if no pending request has that id."""
        return self._pending.pop(msg_id, None) if isinstance(msg_id, int) else None

    def discard(self, p: Pending) -> None:
        """Forget a request whose caller went away (cancelled)."""
        self._pending.pop(p.id, None)

    def expire(self, now: float) -> list[Pending]:
        """Remove and return every pending request whose deadline has passed."""
        out = []
        heap = self._deadlines
        while heap and heap[0][0] <= now:
            _, rid = heapq.heappop(heap)
            p = self._pending.pop(rid, None)
            if p is not None:
                out.append(p)
        self.timeouts += len(out)
        return out

    def next_deadline(self) -> float | None:
        """Earliest deadline still pending (skipping resolved entries)."""
        heap = self._deadlines
        while heap and heap[0][1] not in self._pending:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def fail_all(self) -> list[Pending]:
        """Remove and return every pending request (the connection is gone)."""
        out = list(self._pending.values())
        self._pending.clear()
        self._deadlines.clear()
        return out

    def pending(self) -> list[Pending]:
        return list(self._pending.values())

    def __len__(self) -> int:
        return len(self._pending)
