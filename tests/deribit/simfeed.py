"""Running a Feed against the simulator in a test, and checking what readers saw against its truth."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import contextmanager

import numpy as np

from feeder.client import ClientConfig
from feeder.exchanges.deribit import Credentials
from feeder.exchanges.deribit.costs import DeribitCosts
from feeder.exchanges.deribit.session import SessionConfig
from feeder.ring import GAP, SNAPSHOT, RingReader
from feeder.runtime.feed import FeedConfig
from feeder.sim import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, SimServer, book_hash

BTC, ETH = "BTC-PERPETUAL", "ETH-PERPETUAL"
DEMO = Credentials(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
DEADLINE = 30.0


@contextmanager
def simulator(**overrides):
    """A simulator publishing only on request (rate 0), with test-speed heartbeats."""
    settings = {"instruments": [BTC, ETH], "rate": 0, "seed": 7, "min_heartbeat_interval": 1.0} | overrides
    with SimServer(**settings) as sim:
        yield sim


def feed_config(
    sim: SimServer,
    rings: tuple[str, ...],
    *,
    credentials: Credentials | None = DEMO,
    request_timeout: float = 10.0,
    **session: object,
) -> FeedConfig:
    client = ClientConfig(
        url=sim.ws_url,
        heartbeat="deribit",
        heartbeat_interval=1.0,
        initial_delay=0.05,
        max_backoff=0.5,
        request_timeout=request_timeout,
        rate_limit=DeribitCosts().rate_limit(),
    )
    return FeedConfig(
        client=client,
        rings=rings,
        session=SessionConfig(credentials=credentials, **session),
        resync_retry_s=0.2,
    )


async def until(condition: Callable[[], object], timeout: float = DEADLINE, what: str = "condition"):
    """Poll `condition` (without blocking the event loop) until truthy; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.005)


async def control(sim: SimServer, command: str, *args, **kwargs):
    """A simulator control call off the event loop (the feed keeps reading meanwhile)."""
    return await asyncio.to_thread(getattr(sim, command), *args, **kwargs)


class Tape:
    """Every record of one ring, from its first, as a reader sees them."""

    def __init__(self, ring: str):
        self.ring = ring
        self.reader = RingReader(ring, start="oldest")
        self.chunks: list[np.ndarray] = []
        self.closed = False

    def poll(self) -> Tape:
        if self.closed:
            return self
        chunk = self.reader.read()
        if len(chunk):
            self.chunks.append(chunk)
        return self

    @property
    def records(self) -> np.ndarray:
        self.poll()
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, self.reader.dtype)

    def flags(self) -> list[int]:
        return [int(f) for f in self.records["flags"]]

    def reached(self, change_id: int) -> bool:
        """A non-GAP record at or past `change_id` has been read."""
        recs = self.records
        return bool(len(recs)) and any(
            int(r["change_id"]) >= change_id and not r["flags"] & GAP for r in recs[-5:]
        )

    def close(self) -> None:
        """Stop reading (what was read stays available); a reader that lost records fails the test."""
        self.poll()
        self.closed = True
        self.reader.close()
        assert self.reader.lost == 0, f"{self.ring}: the reader lost {self.reader.lost} records"


def truth_mismatches(sim: SimServer, instrument: str, records: np.ndarray) -> list[tuple[int, int]]:
    """(change_id, flags) of every record whose top 10 differs from the simulator's truth at its change_id.

    GAP records carry the last good book, so they are checked too (empty GAP records before any
    snapshot have change_id 0 and are skipped).
    """
    checked = [r for r in records if int(r["change_id"]) > 0]
    truths = sim.truth_many(instrument, [int(r["change_id"]) for r in checked]) if checked else []
    return [
        (int(r["change_id"]), int(r["flags"]))
        for r, truth in zip(checked, truths, strict=True)
        if book_hash(r["bid_px"], r["bid_sz"], r["ask_px"], r["ask_sz"]) != truth["hash"]
    ]


def flag_violations(records: np.ndarray) -> list[str]:
    """The flag contract: SNAPSHOT first and only after a GAP; after a GAP nothing until a SNAPSHOT;
    between them every record chains onto the one before (prev_change_id == change_id)."""
    problems, state, last = [], "start", 0
    for i, r in enumerate(records):
        flags, cid, prev = int(r["flags"]), int(r["change_id"]), int(r["prev_change_id"])
        if flags & GAP:
            if state == "gap":
                problems.append(f"#{i}: a second GAP without a SNAPSHOT between")
            state = "gap"
        elif flags & SNAPSHOT:
            if state == "live":
                problems.append(f"#{i}: SNAPSHOT while live (no GAP before it)")
            state, last = "live", cid
        else:
            if state != "live":
                problems.append(f"#{i}: unflagged record while {state}")
            elif prev != last:
                problems.append(f"#{i}: prev_change_id {prev} does not chain onto {last}")
            last = cid
    return problems
