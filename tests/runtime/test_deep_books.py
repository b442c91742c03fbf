"""Deeper books, end to end: rings of 25 and 50 levels equal the exchange's book to their depth, a
wrong depth is refused before anything starts, and FeederHandle.book is the worker's whole book."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import wait_until
from runtime.feederkit import FeederProcess, cleanup_run_dir

from feeder import GAP, AsyncFeederHandle, Book, FeederHandle, RingReader, UsageError
from feeder.sim import SimServer
from feeder.sim.config import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

BTC, ETH = "BTC-PERPETUAL", "ETH-PERPETUAL"
DEMO = {"DERIBIT_CLIENT_ID": DEMO_CLIENT_ID, "DERIBIT_CLIENT_SECRET": DEMO_CLIENT_SECRET}
DEPTHS = '[depth]\n"book.BTC*" = 50\n"book.ETH" = 25\n'


@pytest.fixture
def deep_feeder(tmp_path: Path, instance: str):
    """The feeder on a quiet simulator of this test's, BTC books 50 deep and ETH 25; killed after."""
    config = tmp_path / "feeder.toml"
    config.write_text(DEPTHS)
    with SimServer(instruments=[BTC, ETH], rate=0, seed=5) as sim:
        proc = FeederProcess(
            "--url", sim.ws_url, "--instruments", f"{BTC},{ETH}", "--streams", "book", "--workers", "1",
            "--config", str(config), env=DEMO, log=tmp_path / "feeder.log",
        )  # fmt: skip
        try:
            proc.start(workers=1)
            yield sim, proc
        finally:
            if proc.proc is not None and proc.proc.poll() is None:
                os.kill(proc.proc.pid, signal.SIGCONT)
                proc.kill()
            for path in Path("/dev/shm").glob(f"feeder.{instance}.*"):
                path.unlink()
            cleanup_run_dir(instance)


def _exchange_book(h: FeederHandle, instrument: str) -> dict:
    return h.rpc("public/get_order_book", {"instrument_name": instrument, "depth": 10000})


def _at(reader: RingReader, change_id: int) -> np.void:
    """The ring's newest record once it is the valid book at `change_id` (the simulator then rests)."""
    got: list[np.void] = []

    def caught_up() -> bool:
        rec = reader.latest()
        got[:] = [rec]
        return rec is not None and not rec["flags"] & GAP and int(rec["change_id"]) == change_id

    wait_until(caught_up, what=f"{reader.name} at change_id {change_id}")
    return got[0]


def test_deeper_rings_equal_the_exchanges_book_to_their_depth_and_the_handle_gives_the_whole_book(
    deep_feeder,
):
    sim, _ = deep_feeder
    with FeederHandle() as h, RingReader("book.BTC") as btc, RingReader("book.ETH") as eth:
        assert (btc.record_type, eth.record_type) == ("book50", "book25")
        last = sim.publish(600)["last"]
        for reader, instrument, depth in ((btc, BTC, 50), (eth, ETH, 25)):
            rec = _at(reader, last[instrument])
            truth = _exchange_book(h, instrument)
            assert truth["change_id"] == rec["change_id"]
            book = Book(rec, ring=reader.name)
            assert book.depth == depth and book.bid_count == min(depth, len(truth["bids"])) == depth
            assert book.bids.tolist() == truth["bids"][:depth]
            assert book.asks.tolist() == truth["asks"][:depth]
            whole = h.book(instrument)
            assert (whole["change_id"], whole["state"], whole["ring"]) == (
                truth["change_id"],
                "live",
                reader.name,
            )
            assert whole["bids"] == truth["bids"] and whole["asks"] == truth["asks"]
            assert len(whole["bids"]) > depth  # the worker keeps every level, the ring the top `depth`
        top = h.book("BTC", depth=5)  # the alias names the instrument too
        assert top["instrument"] == BTC and top["bids"] == _exchange_book(h, BTC)["bids"][:5]
        assert len(top["asks"]) == 5
        with pytest.raises(UsageError, match="keeps no book of 'SOL-PERPETUAL'"):
            h.book("SOL-PERPETUAL")

    async def from_a_coroutine() -> dict:
        async with await AsyncFeederHandle.connect() as handle:
            return await handle.book(ETH, depth=3)

    assert len(asyncio.run(from_a_coroutine())["bids"]) == 3


@pytest.mark.parametrize(
    ("toml", "field"),
    [
        ('[depth]\n"book.BTC" = 20\n', "depth['book.BTC']"),
        ('[depth]\n"trades.BTC" = 25\n', "depth['trades.BTC']"),
        ("depth = 50\n", "depth"),
    ],
)
def test_a_wrong_depth_exits_2_naming_it(tmp_path: Path, toml: str, field: str):
    config = tmp_path / "feeder.toml"
    config.write_text(toml)
    done = subprocess.run(
        [sys.executable, "-m", "feeder", "--check", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"config field {field!r}" in done.stderr or field in done.stderr, done.stderr


def test_the_check_says_which_record_each_ring_holds(tmp_path: Path):
    config = tmp_path / "feeder.toml"
    config.write_text(DEPTHS)
    done = subprocess.run(
        [sys.executable, "-m", "feeder", "--check", "--config", str(config), "--streams", "book,trades"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    records = json.loads(done.stdout)["records"]
    assert records == {
        "book.BTC": "book50",
        "trades.BTC": "trade",
        "book.ETH": "book25",
        "trades.ETH": "trade",
    }
