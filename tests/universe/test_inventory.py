"""The inventory segment: what the supervisor writes, `universe()` and `wait_for()` read, consistently."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from universe.universekit import CALL, PUT, STREAMS, option

from feeder import FeederNotRunning, universe, wait_for
from feeder.universe.inventory import ENDED, InventoryReader, InventoryWriter, entry_for, inventory_path


@pytest.fixture
def writer():
    w = InventoryWriter(capacity=16)
    yield w
    w.close()


def test_universe_lists_live_instruments_with_metadata_and_rings(writer):
    writer.add([entry_for(CALL, "BTC-options", STREAMS, 5), entry_for(PUT, "BTC-options", STREAMS, 6)])
    u = universe()
    call = u["BTC-25DEC26-100000-C"]
    assert (call.instrument_id, call.kind, call.option_type, call.strike) == (301, "option", "call", 100000.0)
    assert call.expiration == datetime(2026, 12, 25, 8, tzinfo=UTC) and call.tick_size == 0.0001
    assert call.rings == {
        "book": "book.BTC-options",
        "ticker": "ticker.BTC-options",
        "markprice": "markprice.btc_usd",
    }
    assert call.chain and call.settlement_currency == "BTC" and call.contract_size == 1.0
    assert [i.name for i in u.match("BTC-*-P")] == ["BTC-25DEC26-100000-P"]
    assert u.by_id(302).option_type == "put" and len(u) == 2


def test_an_ended_instrument_leaves_the_live_set_but_still_resolves_by_id(writer):
    writer.add([entry_for(CALL, "BTC-options", STREAMS, 5)])
    writer.end([301], 99)
    u = universe()
    assert "BTC-25DEC26-100000-C" not in u and u.by_id(301).ended_ns == 99 and not u.by_id(301).live


def test_a_full_table_drops_ended_entries_to_make_room(writer):
    writer.add(
        [entry_for(option(f"BTC-25DEC26-{n}-C", 1000 + n, strike=n), "BTC-options", 1, 0) for n in range(16)]
    )
    writer.end([1000, 1001], 1)
    assert writer.add([entry_for(CALL, "BTC-options", 1, 2)]) == []
    assert writer.add([entry_for(PUT, "BTC-options", 1, 2)]) == []
    assert writer.add([entry_for(option("BTC-X-1-C", 9), "BTC-options", 1, 2)]) == ["BTC-X-1-C"]
    assert len(universe()) == 16 and universe().by_id(1000) is None


def test_wait_for_returns_once_a_matching_instrument_is_listed(writer):
    writer.add([entry_for(CALL, "BTC-options", STREAMS, 5)])
    threading.Timer(0.2, writer.add, ([entry_for(PUT, "BTC-options", STREAMS, 6)],)).start()
    found = wait_for("BTC-*-P", timeout=30)
    assert [i.instrument_id for i in found] == [302]
    with pytest.raises(TimeoutError, match="ETH-"):
        wait_for("ETH-*", timeout=0.05)


def test_a_reader_never_sees_half_a_change(writer):
    stop = threading.Event()

    def churn() -> None:
        n = 0
        while not stop.is_set():
            writer.add([entry_for(CALL, "BTC-options", STREAMS, n)])
            writer.end([301], n)
            n += 1

    thread = threading.Thread(target=churn)
    thread.start()
    try:
        with InventoryReader() as reader:
            for _ in range(2000):
                _, entries = reader.entries()
                assert len(entries) == 1
                e = entries[0]
                assert e["ended_ns"] == (e["listed_ns"] if e["state"] == ENDED else 0)
    finally:
        stop.set()
        thread.join()


def test_no_inventory_means_no_feeder():
    assert not inventory_path().exists()
    with pytest.raises(FeederNotRunning, match="python -m feeder"):
        universe()


def test_close_removes_the_segment():
    w = InventoryWriter(capacity=16)
    assert inventory_path().exists()
    w.close()
    assert not inventory_path().exists()
