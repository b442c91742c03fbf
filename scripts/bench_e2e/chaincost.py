"""A chain reader's cost per record, by the number of instruments in the chain (in this process).

A chain ring of book records is filled with updates of N instruments (ids drawn at random, as a busy
chain's are), then one `ChainReader` polls it in batches as a strategy would; the figure is the
reader's CPU time per record, median of `repeat` rounds. It should not grow with N: a poll costs what
it reads, not what the chain holds.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from feeder import ChainReader, RingWriter, record_schema

RING = "book.BTC-options"


def chain_reader_cost(
    instruments: int, instance: str, records: int = 100_000, batch: int = 256, repeat: int = 3, seed: int = 1
) -> dict:
    """ns per record of `ChainReader.poll` over a chain of `instruments` books, batches of `batch`."""
    rng = np.random.default_rng(seed)
    capacity = 1 << max(10, (records - 1).bit_length())
    samples = []
    for _ in range(repeat):
        with RingWriter.create(RING, "book", capacity, instance=instance) as writer:
            recs = np.zeros(records, record_schema("book").dtype)
            recs["instrument_id"] = rng.integers(1, instruments + 1, records) + 100_000
            recs["change_id"] = np.arange(records)
            recs["bid_count"] = recs["ask_count"] = 10
            with ChainReader(RING, instance=instance, start="oldest") as reader:
                spent = 0
                for first in range(0, records, batch):
                    writer.publish_batch(recs[first : first + batch])
                    began = time.thread_time_ns()
                    reader.poll()
                    spent += time.thread_time_ns() - began
        samples.append(spent / records)
    return {"instruments": instruments, "batch": batch, "ns_per_record": round(statistics.median(samples), 1)}
