"""`feeder latency` as a real process against a running feeder with the simulator."""

from __future__ import annotations

import json

from feeder.consumers.stages import STAGES


def test_json_reports_every_record_read_in_windows_and_in_the_run(feeders, run):
    feeders.embedded()
    done = run("latency", "book.BTC", "--count", "200", "--window", "0.5", "--json")
    assert done.returncode == 0, done.stderr
    reports = [json.loads(line) for line in done.stdout.splitlines()]
    windows, total = reports[:-1], reports[-1]
    assert [w["window"] for w in windows] == list(range(1, len(windows) + 1))
    assert sum(w["records"] for w in windows) == 200
    assert total["total"] is True and total["records"] == 200 and total["lost"] == 0
    assert total["rings"] == ["book.BTC"]
    for stage in STAGES:
        s = total["stages"][stage]
        assert s["n"] == 200
        assert s["p50_us"] <= s["p99_us"] <= s["p99_9_us"] <= s["max_us"]


def test_end_to_end_dominates_every_stage(feeders, run):
    # each record's end-to-end time is the sum of its three non-negative stages, so every percentile
    # of end-to-end is at least that percentile of any stage
    feeders.embedded()
    done = run("latency", "book.BTC", "--count", "100", "--window", "60", "--json")
    assert done.returncode == 0, done.stderr
    window = json.loads(done.stdout.splitlines()[0])["stages"]
    e2e = window["end-to-end"]
    for stage in ("exchange->recv", "recv->publish", "publish->read"):
        for q in ("p50_us", "p99_us", "max_us"):
            assert e2e[q] >= window[stage][q], (stage, q, window)
    assert window["recv->publish"]["p50_us"] > 0


def test_text_report_has_a_table_per_window_and_the_run(feeders, run):
    feeders.embedded()
    done = run("latency", "book.BTC", "--count", "50", "--window", "60")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "window 1, " in out and "50 records from book.BTC; lost 0" in out
    assert "whole run (1 % buckets)" in out
    assert out.count("stage (µs)") == 2
    for stage in STAGES:
        assert out.count(stage) == 2
