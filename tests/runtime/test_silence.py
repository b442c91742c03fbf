"""Per-channel silence end to end: on a simulator where only BTC's book moves, ETH's channel shows its
silence growing in the status (`FeederHandle`, `feeder status`) and the metrics (per connection too, with
two), BTC's stays below it, and ETH's quiet book is never flagged GAP for it (a quiet market is no gap)."""

from __future__ import annotations

import subprocess
import sys
import urllib.request

import pytest
from helpers import wait_until
from prometheus_client.parser import text_string_to_metric_families
from runtime.feederkit import FeederProcess, cleanup_run_dir

from feeder import GAP, SNAPSHOT, FeederHandle, RingReader
from feeder.runtime.display import render
from feeder.sim import SimServer

BTC, ETH = "BTC-PERPETUAL", "ETH-PERPETUAL"
BTC_BOOK, ETH_BOOK = f"book.{BTC}.100ms", f"book.{ETH}.100ms"  # without credentials: 100 ms books
QUIET_S = 2.0  # how much longer ETH's silence must grow than when first seen


@pytest.fixture(params=[1, 2], ids=["one-connection", "redundant"])
def quiet_eth(request, tmp_path, instance):
    """The feeder (one connection or two) on a resting simulator of this test's; stopped after."""
    with SimServer(instruments=[BTC, ETH], rate=0, seed=11) as sim:
        proc = FeederProcess(
            "--url", sim.ws_url, "--instruments", f"{BTC},{ETH}", "--streams", "book", "--workers", "1",
            "--redundancy", str(request.param), "--metrics-port", "0", log=tmp_path / "feeder.log",
        )  # fmt: skip
        try:
            proc.start(workers=1, timeout=90)
            yield sim
        finally:
            try:
                proc.stop()  # a clean stop removes the rings (the instance fixture checks)
            finally:
                proc.kill()
                cleanup_run_dir(instance)


def _status_when(h: FeederHandle, sim: SimServer, ready, what: str) -> dict:
    """Keep BTC's book moving (a few changes per look) until `ready(status)`; returns that status."""

    def look() -> dict | None:
        sim.publish(3, instrument=BTC)
        status = h.status()
        return status if ready(status) else None

    return wait_until(look, 60, what)


def _both_seen(status: dict) -> bool:
    channels = status["channels"]
    return all(
        c in channels
        and channels[c]["messages"]
        and all(leg["messages"] for leg in channels[c].get("legs", ()))
        for c in (BTC_BOOK, ETH_BOOK)
    )


def test_a_quiet_channel_shows_its_silence_growing_while_a_busy_one_flows_and_stays_valid(quiet_eth):
    sim = quiet_eth
    with FeederHandle() as h:
        before = _status_when(h, sim, _both_seen, "both books' snapshots on both connections")
        eth0, btc0 = before["channels"][ETH_BOOK], before["channels"][BTC_BOOK]
        after = _status_when(
            h, sim,
            lambda s: s["channels"][ETH_BOOK]["silence_s"] >= eth0["silence_s"] + QUIET_S
            and s["channels"][BTC_BOOK]["messages"] > btc0["messages"],
            f"ETH's silence to grow by {QUIET_S} s while BTC's book moves",
        )  # fmt: skip
        metrics = urllib.request.urlopen(after["metrics_url"], timeout=30).read().decode()
    eth, btc = after["channels"][ETH_BOOK], after["channels"][BTC_BOOK]
    assert eth["ring"] == "book.ETH" and btc["ring"] == "book.BTC"
    assert eth["messages"] == eth0["messages"]  # nothing came: the simulator moved BTC only
    assert btc["silence_s"] < eth["silence_s"]  # BTC carried messages after ETH's last
    redundant = "legs" in btc
    assert redundant == (len(after["workers"][0]["legs"]) == 2)  # per connection only with two
    for leg, leg0 in zip(eth.get("legs", ()), eth0.get("legs", ()), strict=True):
        assert leg["messages"] == leg0["messages"] and leg["silence_s"] > leg0["silence_s"], leg
    assert [leg["name"] for leg in btc.get("legs", ())] == (["a", "b"] if redundant else [])
    rings = {r["name"]: r for r in after["rings"]}
    assert rings["book.ETH"]["silence_s"] == rings["book.ETH"]["silence_max_s"] == eth["silence_s"]
    assert rings["book.ETH"]["gaps"] == 0 and rings["book.BTC"]["gaps"] == 0

    found = {f.name: f for f in text_string_to_metric_families(metrics)}
    silence = {s.labels["channel"]: s.value for s in found["feeder_channel_silence_seconds"].samples}
    assert silence[ETH_BOOK] >= eth["silence_s"] and silence[ETH_BOOK] > silence[BTC_BOOK]  # ETH's grows
    messages = {s.labels["channel"]: s.value for s in found["feeder_channel_messages"].samples}
    assert messages[BTC_BOOK] >= btc["messages"] and messages[ETH_BOOK] == eth["messages"]
    legs = {
        (s.labels["channel"], s.labels["leg"]) for s in found["feeder_leg_channel_silence_seconds"].samples
    }
    assert legs == {(c, leg) for c in (BTC_BOOK, ETH_BOOK) for leg in "ab" if redundant}

    text = subprocess.run(
        [sys.executable, "-m", "feeder", "status"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    line = next(row.split() for row in text.splitlines() if row.startswith("book.ETH "))
    assert float(line[8]) + 0.05 >= eth["silence_s"]  # the ring table's silence column (one decimal)

    reader = RingReader("book.ETH", start="oldest")
    try:
        records = reader.read()
    finally:
        reader.close()
    assert len(records) and records[0]["flags"] & SNAPSHOT
    assert not (records["flags"] & GAP).any()  # silence alone never flags the book


def test_the_ring_table_shows_a_chain_rings_freshest_and_quietest_channel():
    ring = {"record_type": "book", "write_seq": 9, "epoch": 1, "writer_alive": False, "gaps": 0}
    status = {
        "instance": "x", "pid": 1, "uptime_s": 1.0, "url": "ws://x", "workers": [],
        "rings": [{**ring, "name": "book.options.BTC", "silence_s": 0.25, "silence_max_s": 41.5},
                  {**ring, "name": "book.BTC", "silence_s": 3.0, "silence_max_s": 3.0},
                  {**ring, "name": "inventory.x"}],
    }  # fmt: skip
    rows = {line.split()[0]: line.split() for line in render(status) if line.startswith(("book.", "inv"))}
    assert rows["book.options.BTC"][8] == "0.2/41.5" and rows["book.BTC"][8] == "3.0"
    assert rows["inventory.x"][8] == "-"  # no channel feeds it
