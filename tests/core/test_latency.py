"""Latency window: bounded, percentiles over the most recent samples."""

from __future__ import annotations

from feeder.core.latency import LatencyWindow


def test_empty_window_reports_zeros():
    assert LatencyWindow(8).summary()["count"] == 0


def test_percentiles_over_a_known_distribution():
    w = LatencyWindow(1000)
    for v in range(1, 1001):
        w.add(float(v))
    s = w.summary()
    assert (s["count"], s["last"], s["max"]) == (1000, 1000.0, 1000.0)
    assert s["p50"] == 500.5 and 990 <= s["p99"] <= 991 and 999 <= s["p999"] <= 1000


def test_only_the_most_recent_samples_count():
    w = LatencyWindow(4)
    for v in (100.0, 100.0, 100.0, 100.0, 1.0, 1.0, 1.0, 1.0):
        w.add(v)
    s = w.summary()
    assert s["max"] == 1.0 and s["count"] == 8 and s["window"] == 4
