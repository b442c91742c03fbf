"""A chain reader over 500 option books equals the simulator's truth of every book at every change_id."""

from __future__ import annotations

import contextlib
import os
import signal
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from helpers import wait_until
from runtime.feederkit import FeederProcess, cleanup_run_dir

from feeder import GAP, ChainReader, universe, wait_for
from feeder.sim import SimServer, book_hash
from feeder.sim.config import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

DEMO = {"DERIBIT_CLIENT_ID": DEMO_CLIENT_ID, "DERIBIT_CLIENT_SECRET": DEMO_CLIENT_SECRET}
NOW = int(datetime(2026, 12, 1, 12, tzinfo=UTC).timestamp() * 1000)
OPTIONS = 500  # 10 expiries x 25 strikes x call and put
UPDATES = 4000


@pytest.fixture
def feeder(tmp_path, instance):
    settings = dict(
        instruments=["BTC-*-C", "BTC-*-P"], rate=0, seed=11, option_expiries=10, option_strikes=25,
        start_ms=NOW, rate_limits=False,
    )  # fmt: skip
    with SimServer(**settings) as sim:
        proc = FeederProcess(
            "--url", sim.ws_url, "--kind", "option", "--currency", "BTC", "--chains", "option",
            "--streams", "book", "--workers", "1", env=DEMO, log=tmp_path / "feeder.log",
        )  # fmt: skip
        try:
            yield sim, proc.start(workers=1)
        finally:
            if proc.proc is not None and proc.proc.poll() is None:
                proc.kill()
            for pid in proc.children():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            for path in Path("/dev/shm").glob(f"feeder.{instance}.*"):
                path.unlink()
            cleanup_run_dir(instance)


def _top(rec: np.void) -> int:
    b, a = int(rec["bid_count"]), int(rec["ask_count"])
    return book_hash(rec["bid_px"][:b], rec["bid_sz"][:b], rec["ask_px"][:a], rec["ask_sz"][:a])


def test_a_chain_reader_over_500_books_equals_the_truth_at_every_change_id(feeder):
    sim, _ = feeder
    assert len(wait_for("BTC-*", timeout=60)) == OPTIONS
    names = {i.instrument_id: i.name for i in universe()}
    read: list[np.ndarray] = []
    with ChainReader("book.BTC-options") as chain:
        wait_until(
            lambda: read.append(chain.poll()) or len(chain) == OPTIONS, 120, "a snapshot of every book"
        )
        published = sim.publish(UPDATES)["last"]  # instrument -> its last change_id now
        wait_until(
            lambda: (
                read.append(chain.poll())
                or all(chain.latest(name)["change_id"] == cid for name, cid in published.items())
            ),
            120,
            "every book at the simulator's last change_id",
        )
        rows = chain.books()
    records = np.concatenate(read)
    assert chain.reader.lost == 0 and not np.any(records["flags"] & GAP)
    assert len(records) >= OPTIONS + UPDATES * 0.9  # some changes touch levels beyond the top 10
    wanted: dict[str, list[int]] = {}
    for rec in [*records, *rows]:
        wanted.setdefault(names[int(rec["instrument_id"])], []).append(int(rec["change_id"]))
    truths = sim.control("truths", books=wanted)
    expected = {(name, t["change_id"]): t["hash"] for name, books in truths.items() for t in books}
    wrong = [
        (names[int(r["instrument_id"])], int(r["change_id"]))
        for r in [*records, *rows]
        if expected[(names[int(r["instrument_id"])], int(r["change_id"]))] != _top(r)
    ]
    assert wrong == []
    assert len(rows) == OPTIONS and set(rows["instrument_id"]) == set(names)
