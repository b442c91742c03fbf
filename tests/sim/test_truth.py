"""Ground truth: the hash contract, the replay window, the sent-time records and the truth log."""

from __future__ import annotations

from hashlib import blake2b

import numpy as np
import pytest
from sim.conftest import BTC
from sim.kit import Rpc

from feeder.ring.schema import record_schema
from feeder.sim import SimServer, book_hash, read_truth_log
from feeder.sim.truth import TruthError, TruthWindow


def test_book_hash_is_blake2b_of_a_ring_records_four_arrays():
    rec = np.zeros(1, dtype=record_schema("book").dtype)[0]
    rec["bid_px"][:3] = [100.5, 100.0, 99.5]
    rec["bid_sz"][:3] = [10.0, 20.0, 30.0]
    rec["ask_px"][:2] = [101.0, 101.5]
    rec["ask_sz"][:2] = [5.0, 6.0]
    raw = b"".join(rec[f].astype("<f8").tobytes() for f in ("bid_px", "bid_sz", "ask_px", "ask_sz"))
    expected = int.from_bytes(blake2b(raw, digest_size=8).digest(), "little")
    assert book_hash(rec["bid_px"], rec["bid_sz"], rec["ask_px"], rec["ask_sz"]) == expected
    assert book_hash([100.5, 100.0, 99.5], [10, 20, 30], [101.0, 101.5], [5, 6]) == expected


def test_book_hash_changes_with_any_level():
    base = book_hash([100.0], [1.0], [101.0], [1.0])
    assert base != book_hash([100.0], [2.0], [101.0], [1.0])
    assert base != book_hash([100.0, 99.0], [1.0, 1.0], [101.0], [1.0])


def _window(size: int) -> tuple[TruthWindow, dict[int, int]]:
    bids = {100: 1}
    return TruthWindow(size, 10, bids, {}), bids


def test_truth_window_replays_to_any_held_change():
    window, bids = _window(64)
    for n in range(1, 200):
        bids[100 + n] = n
        window.changes.append((10 + n, [("new", 100 + n, n)], []))
        window.count += 1
        if not window.count % window.every:
            window.checkpoint(10 + n, bids, {})
    ((cid, replayed, _),) = window.books([190])
    assert cid == 190 and replayed == {100: 1, **{100 + n: n for n in range(1, 181)}}


def test_truth_window_refuses_forgotten_and_unknown_change_ids():
    window, bids = _window(64)
    for n in range(1, 200):
        bids[100 + n] = n
        window.changes.append((10 + 2 * n, [("new", 100 + n, n)], []))
        window.count += 1
        if not window.count % window.every:
            window.checkpoint(10 + 2 * n, bids, {})
    with pytest.raises(TruthError, match="older than the truth window"):
        list(window.books([12]))
    with pytest.raises(TruthError, match="no book change with change_id 387"):
        list(window.books([387]))


def test_truth_names_an_unknown_change_id(sim):
    last = sim.publish(5, BTC)["last"][BTC]
    with pytest.raises(Exception, match="no book change"):
        sim.truth(BTC, last + 1000)


def test_sent_records_change_ids_and_send_times_per_channel(sim, connect):
    client = connect()
    client.auth()
    channel = f"book.{BTC}.raw"
    client.result("public/subscribe", {"channels": [channel]})
    snapshot = client.data(channel)
    sim.publish(10, BTC)
    received = [client.data(channel) for _ in range(10)]
    sent = sim.sent(channel)
    assert [r[:2] for r in sent] == [[snapshot["change_id"], 0]] + [
        [d["change_id"], d["prev_change_id"]] for d in received
    ]
    assert all(r[2] > 0 for r in sent) and [r[2] for r in sent] == sorted(r[2] for r in sent)


def test_truth_log_holds_a_hash_per_change_and_a_line_per_notification(tmp_path):
    path = tmp_path / "truth.log"
    with SimServer(instruments=[BTC], rate=0, seed=3, truth_log=str(path)) as sim:
        client = Rpc(sim.ws_url)
        try:
            client.auth()
            client.result("public/subscribe", {"channels": [f"book.{BTC}.raw"]})
            client.data(f"book.{BTC}.raw")
            last = sim.publish(30, BTC)["last"][BTC]
            for _ in range(30):
                client.data(f"book.{BTC}.raw")
            truth = sim.truth(BTC, last)
        finally:
            client.close()
    log = read_truth_log(str(path))
    assert log.hashes[(BTC, last)] == truth["hash"]
    assert len([k for k in log.hashes if k[0] == BTC]) == 30
    sends = log.sends[f"book.{BTC}.raw"]
    assert len(sends) == 31 and sends[-1][0] == last and all(ns > 0 for _, _, ns in sends)
