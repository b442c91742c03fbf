"""The monitor's view of a chain ring (pure): trust per instrument, chain-wide GAPs, the books shown."""

from __future__ import annotations

from feeder import GAP, MARKER, SNAPSHOT
from feeder.consumers.chaintops import ChainTops, ring_line
from feeder.consumers.monitor import table
from feeder.consumers.topbook import GAP_STATE, LIVE

NAMES = {7: "BTC-27DEC26-100000-C", 8: "BTC-27DEC26-100000-P", 9: "BTC-27DEC26-110000-C"}


def _chain(book_records, *rows: tuple, first_seq: int = 0):
    """`rows` of (instrument_id, bid, ask, flags)."""
    out = book_records(*(row[1:] for row in rows), first_seq=first_seq)
    out["instrument_id"] = [row[0] for row in rows]
    return out


def test_a_gap_on_one_option_flags_only_that_option(book_records):
    chain = ChainTops("book.BTC-options", NAMES.__getitem__)
    first = chain.on_records(
        _chain(book_records, (7, 1.0, 2.0, SNAPSHOT), (8, 3.0, 4.0, SNAPSHOT), (9, 5.0, 6.0, SNAPSHOT))
    )
    assert first == []  # a chain starting is hundreds of SNAPSHOTs: counted, not printed
    assert chain.state() == LIVE
    lines = chain.on_records(_chain(book_records, (8, 3.0, 4.0, GAP), (7, 1.5, 2.0, 0), first_seq=3))
    assert len(lines) == 1 and lines[0].startswith("BTC-27DEC26-100000-P GAP at seq 3")
    assert chain.tops[8].state == GAP_STATE and chain.tops[7].state == LIVE == chain.tops[9].state
    assert chain.state() == "GAP 1/3"
    lines = chain.on_records(_chain(book_records, (8, 3.0, 4.5, SNAPSHOT), first_seq=5))
    assert lines == ["BTC-27DEC26-100000-P SNAPSHOT at seq 5 change_id 1005: book trustworthy"]
    assert chain.state() == LIVE
    ring, *books = chain.rows(now_ns=1_700_000_001_000_000_000, most=2)
    assert (ring["instruments"], ring["records"], ring["gaps"], ring["snapshots"]) == (3, 6, 1, 4)
    assert [b["ring"] for b in books] == ["  BTC-27DEC26-100000-P", "  BTC-27DEC26-100000-C"]
    assert books[0]["ask"] == (4.5, 20.0) and books[1]["bid"] == (1.5, 10.0)
    assert "book.BTC-options live: 3 books | seq 5 " in ring_line(ring)
    screen = table([ring, *books])
    assert screen[2].startswith("  BTC-27DEC26-100000-P ") and "4.5" in screen[2]


def test_a_chain_wide_marker_puts_every_book_in_gap_in_ring_order(book_records):
    chain = ChainTops("book.BTC-options", NAMES.__getitem__)
    chain.on_records(_chain(book_records, (7, 1.0, 2.0, SNAPSHOT), (8, 3.0, 4.0, SNAPSHOT)))
    lines = chain.on_records(
        _chain(book_records, (0, None, None, MARKER | GAP), (7, 1.0, 2.0, SNAPSHOT), first_seq=2)
    )
    assert lines[0].startswith("GAP of the whole chain at seq 2")
    assert lines[1].startswith("BTC-27DEC26-100000-C SNAPSHOT at seq 3")  # after the marker: trusted again
    assert chain.tops[7].state == LIVE and chain.tops[8].state == GAP_STATE
    assert chain.state() == "GAP 1/2" and 0 not in chain.tops


def test_an_instrument_the_inventory_does_not_know_is_named_by_its_id(book_records):
    chain = ChainTops("book.BTC-options", lambda iid: NAMES.get(iid, f"#{iid}"))
    chain.on_records(_chain(book_records, (42, 1.0, 2.0, SNAPSHOT)))
    assert chain.tops[42].ring == "#42"
