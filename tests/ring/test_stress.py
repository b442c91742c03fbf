"""The torn-read stress test: a writer at full speed (copying records in and writing them in place),
readers of every speed and way of waiting, exact accounting."""

from __future__ import annotations

import json

from ring.ringkit import read_line

from feeder.ring import create_ring

TOTAL = 200_000
CAPACITY = 64  # small, so that readers are lapped and slots are overwritten while being copied
READERS = ("fast", "fast", "sleepy", "slow", "blocking")


def test_no_reader_ever_gets_a_torn_record_and_every_missing_record_is_counted_lost(procs):
    with create_ring("book.STRESS", "book", CAPACITY):
        readers = [
            procs(f"from ring.ringkit import stress_reader\nstress_reader('book.STRESS', {TOTAL}, {mode!r})")
            for mode in READERS
        ]
        for reader in readers:
            assert json.loads(read_line(reader)) == {"ready": True}
        writer = procs(f"from ring.ringkit import stress_writer\nstress_writer('book.STRESS', {TOTAL}, 7)")
        assert writer.wait(timeout=150) == 0
        results = {
            f"{mode}-{i}": json.loads(read_line(r, timeout=60))
            for i, (mode, r) in enumerate(zip(READERS, readers, strict=True))
        }
    for name, result in results.items():
        assert result["torn"] == 0, (name, result)
        assert result["disorder"] == 0, (name, result)
        assert result["next"] == TOTAL, (name, result)
        assert result["read"] + result["lost"] == TOTAL - result["start"], (name, result)
    assert results["slow-3"]["lost"] > 0, "the slow reader was never lapped: the test proved nothing"
