"""Per-stage latency statistics (pure): stages from timestamps, exact window percentiles, run histogram."""

from __future__ import annotations

import numpy as np

from feeder import record_schema
from feeder.consumers.latency import table
from feeder.consumers.stages import Histogram, Samples, StageLatency

BOOK = record_schema("book").dtype


def stamped(exchange: list[int], recv: list[int], publish: list[int]) -> np.ndarray:
    out = np.zeros(len(recv), BOOK)
    out["ts_exchange"], out["ts_recv"], out["ts_publish"] = exchange, recv, publish
    return out


def test_each_stage_is_the_difference_of_its_timestamps():
    lat = StageLatency()
    lat.add(stamped([1_000_000], [1_500_000], [1_520_000]), read_ns=1_521_000)
    stats = lat.close_window()
    assert stats["exchange->recv"].max == 500_000
    assert stats["recv->publish"].max == 20_000
    assert stats["publish->read"].max == 1_000
    assert stats["end-to-end"].max == 521_000


def test_records_without_an_exchange_timestamp_are_left_out_of_its_stages():
    lat = StageLatency()
    lat.add(stamped([0, 1_000], [2_000, 2_000], [2_100, 2_100]), read_ns=2_200)
    stats = lat.close_window()
    assert stats["exchange->recv"].n == 1 and stats["end-to-end"].n == 1
    assert stats["recv->publish"].n == 2 and stats["publish->read"].n == 2


def test_window_percentiles_are_values_that_were_seen():
    samples = Samples(capacity=2)  # grows as needed
    samples.extend(np.arange(1, 1001, dtype=np.int64))
    s = samples.stats()
    assert (s.n, s.p50, s.p99, s.p99_9, s.max) == (1000, 500, 990, 999, 1000)


def test_closing_a_window_starts_an_empty_one():
    lat = StageLatency()
    lat.add(stamped([1], [2], [3]), read_ns=4)
    lat.close_window()
    assert all(v is None for v in lat.close_window().values())


def test_run_histogram_percentiles_are_within_one_percent_above():
    hist = Histogram()
    values = np.arange(1_000, 1_001_000, 1_000, dtype=np.int64)  # 1 µs .. 1 ms
    hist.add(values[:500])
    hist.add(values[500:])
    s = hist.stats()
    assert s.n == 1000 and s.max == 1_000_000
    for got, exact in ((s.p50, 500_000), (s.p99, 990_000), (s.p99_9, 999_000)):
        assert exact <= got <= exact * 1.0101


def test_negative_and_zero_values_fall_into_the_first_bucket():
    hist = Histogram()
    hist.add(np.array([-5, 0, 1], np.int64))
    assert hist.counts[0] == 3


def test_table_prints_microseconds_and_dashes_for_empty_stages():
    lat = StageLatency()
    lat.add(stamped([0], [1_000], [3_000]), read_ns=10_000)
    lines = table(lat.close_window())
    assert lines[1].split() == ["exchange->recv", "0", "-", "-", "-", "-"]
    assert lines[2].split() == ["recv->publish", "1", "2.0", "2.0", "2.0", "2.0"]
