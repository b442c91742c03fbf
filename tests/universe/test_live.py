"""The universe end to end: the feeder against a simulator whose instruments come and go at run time.

One feeder serves `BTC-*` (options in chain rings, futures and perpetuals in rings of their own) from a
simulator started at 1 Dec 2026 12:00 UTC (the first option expiry is 2DEC26 08:00); the test lists an
option, makes an expiry happen, settles a future and locks the currency, and watches what readers see.
"""

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

from feeder import FINAL, GAP, LOCKED, MARKER, ChainReader, FeederHandle, RingReader, universe, wait_for
from feeder.sim import SimServer
from feeder.sim.config import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

NOW = int(datetime(2026, 12, 1, 12, tzinfo=UTC).timestamp() * 1000)
DEMO = {"DERIBIT_CLIENT_ID": DEMO_CLIENT_ID, "DERIBIT_CLIENT_SECRET": DEMO_CLIENT_SECRET}
EXPIRING = "BTC-2DEC26-*"
FUTURE = "BTC-4DEC26"
NEW = "BTC-4DEC26-150000-C"


@pytest.fixture
def sim():
    settings = dict(
        instruments=["BTC-*"], rate=200, seed=5, option_expiries=2, option_strikes=2, start_ms=NOW,
        settlement_grace=0.5, min_heartbeat_interval=1.0,
    )  # fmt: skip
    with SimServer(**settings) as server:
        yield server


@pytest.fixture
def feeder(sim, tmp_path, instance):
    config = tmp_path / "feeder.toml"
    config.write_text("removal_grace = 1.0\nheartbeat_interval = 1.0\naudit_interval = 0\n")
    proc = FeederProcess(
        "--url", sim.ws_url, "--instruments", "BTC-*", "--chains", "option", "--workers", "2",
        "--config", str(config), env=DEMO, log=tmp_path / "feeder.log",
    )  # fmt: skip
    try:
        yield proc.start(workers=2)
    finally:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.kill()
        for pid in proc.children():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for path in Path("/dev/shm").glob(f"feeder.{instance}.*"):
            path.unlink()
        cleanup_run_dir(instance)


def _books(chain: ChainReader, names: list[str]) -> bool:
    chain.poll()
    return all(chain.book(name) is not None for name in names)


def test_listings_expiries_and_locks_reach_readers(sim, feeder):
    options = [i.name for i in wait_for("BTC-*-C", timeout=60) + wait_for("BTC-*-P", timeout=60)]
    u = universe()
    assert {i.kind for i in u} == {"option", "future", "perpetual"} and u["BTC-PERPETUAL"].rings[
        "book"
    ] == "book.BTC"
    assert all(u[name].rings["book"] == "book.BTC-options" for name in options)
    with ChainReader("book.BTC-options") as chain, RingReader(f"book.{FUTURE}", start="oldest") as future:
        wait_until(lambda: _books(chain, options), what="a book for every option in the chain reader")
        _option_tickers_and_marks(options, u)

        # a listing at run time: in the inventory, then served into the chain ring, within seconds
        sim.control("list", instrument=NEW)
        [listed] = wait_for(NEW, timeout=30)
        assert listed.strike == 150000.0 and listed.option_type == "call" and listed.instrument_id > 0
        wait_until(lambda: _books(chain, [NEW]), what=f"{NEW}'s book in the chain ring")
        assert chain.book(NEW).is_snapshot or chain.book(NEW).valid

        # an expiry: the options of 2DEC26 get FINAL records, leave the chain reader and the inventory
        expiring = [name for name in options if name.startswith("BTC-2DEC26-")]
        done = sim.control("advance", to="expiry")
        assert set(expiring) <= set(done["settled"])
        wait_until(
            lambda: chain.poll() is not None and all(chain.book(n) is None for n in expiring), what="ends"
        )
        assert chain.ended >= len(expiring)
        wait_until(lambda: not universe().match(EXPIRING), what="the expired options out of the inventory")
        assert all(not universe().by_id(u[name].instrument_id).live for name in expiring)
        new_expiry = [n for n in done["listed"] if n.startswith("BTC-") and n.endswith(("-C", "-P"))]
        assert new_expiry and wait_for(new_expiry[0], timeout=30)  # the schedule lists the next expiry

        # a future of its own ring settles: its last record is FINAL, then the ring is closed, then removed
        sim.control("expire", instrument=FUTURE)
        records = []
        wait_until(
            lambda: records.append(future.read()) or future.ring_closed, what="the future's ring closed"
        )
        records = np.concatenate([*records, future.read()])
        assert records[-1]["flags"] & FINAL and records[-1]["flags"] & GAP
        assert records[-1]["instrument_id"] == u[FUTURE].instrument_id
    segment = Path("/dev/shm") / f"feeder.{feeder.env['FEEDER_INSTANCE']}.book.{FUTURE}"
    wait_until(lambda: not segment.exists(), what="the closed ring removed after the grace period")

    with FeederHandle() as h:
        status = h.status()["universe"]
    assert status["listed"] >= 2 and status["ended"] == len(expiring) + 1 and status["refused"] == 0
    # a platform lock flags the currency's books at once, and the flag goes when it is lifted
    with RingReader("book.BTC") as perp, RingReader("trades.BTC-options") as trades:
        sim.fault("lock", currency="BTC")
        wait_until(lambda: _flagged(perp, LOCKED), what="a LOCKED record on book.BTC")
        sim.fault("unlock", currency="BTC")
        wait_until(lambda: _flagged(perp, 0), what="an unlocked record on book.BTC")
        assert not _flagged(trades, MARKER)  # a lock interrupts nothing


def _option_tickers_and_marks(options: list[str], u) -> None:
    """Option tickers carry their IVs, greeks and underlying; mark prices come as a chain too."""
    with ChainReader("ticker.BTC-options") as tickers, ChainReader("markprice.btc_usd") as marks:
        wait_until(lambda: tickers.poll() is not None and all(tickers.latest(n) is not None for n in options))
        for name in options:
            t = tickers.latest(name)
            assert t["instrument_id"] == u[name].instrument_id and t["underlying_type"] in (1, 2, 3)
            assert np.isfinite(
                [t["mark_iv"], t["bid_iv"], t["delta"], t["gamma"], t["vega"], t["theta"]]
            ).all()
            assert np.isfinite(t["underlying_price"]) and (t["delta"] > 0) == name.endswith("-C")
        wait_until(
            lambda: marks.poll() is not None and len(marks) == len(options), what="a mark for each option"
        )
        assert np.all(marks.books()["mark_price"] > 0) and np.all(np.isfinite(marks.books()["iv"]))


def _flagged(reader: RingReader, flag: int) -> bool:
    records = reader.read()
    if not flag:
        return bool(len(records)) and not records[-1]["flags"] & LOCKED
    return bool(np.any(records["flags"] & flag))
