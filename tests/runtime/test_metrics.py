"""`--metrics-port`: the whole exposition parsed by prometheus-client's own parser, every family checked
(name, type, unit, labels), the stage histograms computed from record timestamps, and the Grafana
dashboard querying only metrics that exist."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from helpers import wait_until
from prometheus_client.parser import text_string_to_metric_families
from runtime.feederkit import FeederProcess, cleanup_run_dir

from feeder import GAP, MARKER, FeederHandle, record_schema
from feeder.runtime.metrics import BUCKETS, FAMILIES, Histogram, RecordStages, exposition

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "feeder.json"
WORKER = {"feeder_instance", "worker"}
RING = {"feeder_instance", "ring", "worker"}
LEG = WORKER | {"leg"}
CHANNEL = RING | {"channel"}
# family -> (type, labels of its samples); the parser names counters without their _total
EXPECTED = {
    "feeder_uptime_seconds": ("gauge", {"feeder_instance"}),
    "feeder_worker_up": ("gauge", WORKER),
    "feeder_worker_health_score": ("gauge", WORKER),
    "feeder_worker_cpu_usage_ratio": ("gauge", WORKER),
    "feeder_worker_messages_per_second": ("gauge", WORKER),
    "feeder_worker_request_round_trip_seconds": ("summary", WORKER | {"quantile"}),
    "feeder_worker_requests_served": ("counter", WORKER),
    "feeder_worker_restarts": ("counter", WORKER),
    "feeder_worker_reconnects": ("counter", WORKER),
    "feeder_worker_gaps": ("counter", WORKER),
    "feeder_worker_ping_round_trip_seconds": ("gauge", WORKER),
    "feeder_worker_rate_limit_events": ("counter", WORKER),
    "feeder_worker_refused_connects": ("counter", WORKER),
    "feeder_leg_up": ("gauge", LEG),
    "feeder_leg_health_score": ("gauge", LEG),
    "feeder_leg_books_joined": ("gauge", LEG),
    "feeder_leg_wins": ("counter", LEG),
    "feeder_leg_losses": ("counter", LEG),
    "feeder_leg_filled": ("counter", LEG),
    "feeder_leg_win_share_ratio": ("gauge", LEG),
    "feeder_leg_behind_seconds": ("summary", LEG | {"quantile"}),
    "feeder_leg_reconnects": ("counter", LEG),
    "feeder_ring_records_published": ("counter", RING),
    "feeder_ring_writer_epoch": ("gauge", RING),
    "feeder_ring_last_publish_age_seconds": ("gauge", RING),
    "feeder_ring_gaps": ("counter", RING),
    "feeder_ring_size_bytes": ("gauge", RING),
    "feeder_ring_audits_passed": ("counter", RING),
    "feeder_ring_audits_failed": ("counter", RING),
    "feeder_ring_audits_unverifiable": ("counter", RING),
    "feeder_ring_last_passed_audit_age_seconds": ("gauge", RING),
    "feeder_ring_crossed": ("counter", RING),
    "feeder_record_latency_seconds": ("histogram", RING | {"stage"}),
    "feeder_channel_silence_seconds": ("gauge", CHANNEL),
    "feeder_channel_messages": ("counter", CHANNEL),
    "feeder_leg_channel_silence_seconds": ("gauge", CHANNEL | {"leg"}),
    "feeder_leg_channel_messages": ("counter", CHANNEL | {"leg"}),
}
# a base unit, or a name that says it has none (a score 0-100, a rate of messages, an epoch number, 0/1)
UNITS = ("_seconds", "_bytes", "_ratio", "_score", "_per_second", "_epoch", "_up", "_joined")


def status(instance: str = "prod") -> dict:
    worker = {
        "index": 0, "state": "running", "connected": True, "rings": ["book.BTC"], "msgs_per_s": 120.5,
        "latency_p50_ms": 1.5, "latency_p99_ms": 9.0, "score": 95, "restarts": 1, "served": 7, "gaps": 2,
        "reconnects": 3, "cpu_percent": 12.5, "rtt_ms": 0.4, "rate_limit_events": 1, "refused_connects": 2,
    }  # fmt: skip
    leg = {
        "name": "a", "connected": True, "score": 90, "books_joined": 1, "wins": 70, "losses": 30, "filled": 2,
        "win_share": 0.7, "behind_p50_us": 512, "behind_p99_us": 4096, "reconnects": 1,
    }  # fmt: skip
    worker["legs"] = [leg, {**leg, "name": "b", "win_share": 0.3, "behind_p99_us": None}]
    idle = {
        **worker,
        "index": 1,
        "state": "starting",
        "connected": False,
        "rings": [],
        "cpu_percent": None,
        "legs": [],
    }
    ring = {
        "name": "book.BTC",
        "write_seq": 1000,
        "epoch": 2,
        "last_publish_age_s": 0.25,
        "gaps": 2,
        "size_bytes": 4096,
        "audits": {"passed": 5, "failed": 1, "unverifiable": 2, "last_passed_age_s": 3.5, "crossed": 1},
    }
    legs = [
        {"name": "a", "messages": 900, "silence_s": 0.5},
        {"name": "b", "messages": 880, "silence_s": 2.0},
    ]
    channels = {
        "book.BTC-PERPETUAL.raw": {"ring": "book.BTC", "worker": 0, "messages": 950, "silence_s": 0.5, "legs": legs},
        "trades.BTC-PERPETUAL.raw": {"ring": "trades.BTC", "worker": 0, "messages": 0, "silence_s": 30.0},
    }  # fmt: skip
    return {
        "instance": instance,
        "uptime_s": 12.0,
        "workers": [worker, idle],
        "rings": [ring],
        "channels": channels,
    }


def stages() -> dict[str, RecordStages]:
    records = np.zeros(4, record_schema("book").dtype)
    records["ts_exchange"] = [1_000_000_000, 0, 1_000_000_000, 1_000_000_000]
    records["ts_recv"] = records["ts_exchange"] + 2_000_000  # 2 ms
    records["ts_recv"][1] = 5_000_000_000
    records["ts_publish"] = records["ts_recv"] + 30_000  # 30 µs
    records["flags"][3] = GAP
    ring = RecordStages()
    ring.add(records)
    return {"book.BTC": ring}


def families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def check_every_family(text: str) -> dict:
    """Parse the whole exposition and check every family against EXPECTED; returns the families."""
    found = families(text)
    assert set(found) == set(EXPECTED)
    for name, family in found.items():
        kind, labels = EXPECTED[name]
        assert family.type == kind, name
        assert name.startswith("feeder_") and family.documentation, name
        assert kind == "counter" or name.endswith(UNITS), f"{name}: no unit or kind suffix"
        assert family.samples, f"{name} has no samples"
        for sample in family.samples:
            assert set(sample.labels) - {"le"} == labels, (name, sample.labels)
            if kind == "counter":
                assert sample.name == f"{name}_total"
    return found


def test_every_family_follows_the_conventions_and_parses():
    found = check_every_family(exposition(status(), stages()))
    round_trip = {
        s.labels["quantile"]: s.value for s in found["feeder_worker_request_round_trip_seconds"].samples
    }
    assert round_trip == {"0.5": 0.0015, "0.99": 0.009}  # from the workers' milliseconds
    up = {s.labels["worker"]: s.value for s in found["feeder_worker_up"].samples}
    assert up == {"0": 1.0, "1": 0.0}
    assert [s.labels["worker"] for s in found["feeder_ring_gaps"].samples] == ["0"]  # the ring's writer
    cpu = found["feeder_worker_cpu_usage_ratio"].samples
    assert [(s.labels["worker"], s.value) for s in cpu] == [("0", 0.125)]  # no figure yet: no sample
    behind = {
        (s.labels["leg"], s.labels["quantile"]): s.value for s in found["feeder_leg_behind_seconds"].samples
    }
    assert behind == {("a", "0.5"): 512e-6, ("a", "0.99"): 4096e-6, ("b", "0.5"): 512e-6}  # µs to seconds
    silence = {
        (s.labels["channel"], s.labels["ring"]): s.value
        for s in found["feeder_channel_silence_seconds"].samples
    }
    assert silence == {
        ("book.BTC-PERPETUAL.raw", "book.BTC"): 0.5,
        ("trades.BTC-PERPETUAL.raw", "trades.BTC"): 30.0,
    }
    per_leg = {s.labels["leg"]: s.value for s in found["feeder_leg_channel_messages"].samples}
    assert per_leg == {"a": 900, "b": 880}  # only the channel of a worker with redundant connections


def test_histograms_come_from_the_records_timestamps():
    found = families(exposition(status(), stages()))["feeder_record_latency_seconds"]
    by = {}
    for s in found.samples:
        by.setdefault(s.labels["stage"], {})[s.name.rpartition("_")[2] + s.labels.get("le", "")] = s.value
    publish, exchange = by["receive_to_publish"], by["exchange_to_receive"]
    assert publish["count"] == 3  # the GAP record is left out
    assert publish["bucket2.5e-05"] == 0 and publish["bucket5e-05"] == 3
    assert publish["sum"] == pytest.approx(3 * 30e-6)
    assert exchange["count"] == 2  # and so is the record without an exchange stamp
    assert exchange["bucket0.001"] == 0 and exchange["bucket0.0025"] == 2 and exchange["bucket+Inf"] == 2


def test_a_histogram_counts_negative_differences_as_zero_and_is_cumulative():
    hist = Histogram()
    hist.observe(np.array([-1.0, 0.0, 1e-5, 3.0, 100.0]))
    buckets = hist.buckets()
    assert buckets[0] == (BUCKETS[0], 3) and buckets[-1][1] == 5 and hist.count == 5
    assert [count for _, count in buckets] == sorted(count for _, count in buckets)


def test_markers_are_left_out_of_the_histograms():
    records = np.zeros(2, record_schema("trade").dtype)
    records["ts_recv"], records["ts_publish"], records["flags"] = 1, 2, [MARKER, GAP | MARKER]
    ring = RecordStages()
    ring.add(records)
    assert ring.stages["receive_to_publish"].count == 0


def test_label_values_are_escaped():
    found = families(exposition(status(instance='a"b\\c'), {}))
    assert found["feeder_uptime_seconds"].samples[0].labels["feeder_instance"] == 'a"b\\c'


def test_the_grafana_dashboard_queries_only_metrics_and_labels_that_exist():
    dashboard = json.loads(DASHBOARD.read_text())
    parsed = list(text_string_to_metric_families(exposition(status(), stages())))
    samples = {s.name for f in parsed for s in f.samples}
    labels = {label for f in parsed for s in f.samples for label in s.labels}
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs.append(dashboard["templating"]["list"][1]["query"]["query"])  # label_values(metric, label)
    matchers = [m for e in exprs for m in re.findall(r"\{([^}]*)\}|by \(([^)]*)\)|, (\w+)\)", e)]
    used_labels = {
        name for groups in matchers for part in groups for name in re.findall(r"(\w+)\s*(?:=|!|,|$)", part)
    }
    bare = [re.sub(r"\{[^}]*\}|by \([^)]*\)|, \w+\)", "", e) for e in exprs]
    used = {name for expr in bare for name in re.findall(r"\bfeeder_[a-z_]+", expr)}
    assert used and used <= samples, used - samples
    assert used_labels and used_labels <= labels | {"le"}, used_labels - labels
    families_used = {re.sub(r"_(bucket|sum|count|total)$", "", n) for n in used}
    assert {re.sub(r"_total$", "", f.name) for f in FAMILIES} <= families_used  # every family is shown
    assert all(p["title"] and p["targets"] for p in dashboard["panels"])


def test_a_running_feeder_exposes_every_family_with_live_latency_histograms(tmp_path, instance):
    feeder = FeederProcess(
        "--sim", "--instruments", "BTC-PERPETUAL", "--workers", "1", "--streams", "book,trades",
        "--sim-rate", "300", "--metrics-port", "0", "--audit-interval", "1", "--redundancy", "2",
        log=tmp_path / "feeder.log",
    )  # fmt: skip
    try:
        feeder.start(workers=1, timeout=90)
        with FeederHandle() as h:
            url = h.status()["metrics_url"]

        def observed() -> dict | None:
            found = families(urllib.request.urlopen(url, timeout=30).read().decode())
            latency = found.get("feeder_record_latency_seconds")
            counts = [s for s in (latency.samples if latency else []) if s.name.endswith("_count")]
            ready = [s for s in counts if s.labels["ring"] == "book.BTC" and s.value > 0]
            audited = found.get("feeder_ring_last_passed_audit_age_seconds")
            # both stages observed, and the book passed a live audit
            return found if len(ready) == 2 and audited and audited.samples else None

        wait_until(observed, 90, "latency histograms and a passed audit of book.BTC in the exposition")
        text = urllib.request.urlopen(url, timeout=30).read().decode()
    finally:
        feeder.stop()
        feeder.kill()
        cleanup_run_dir(instance)
    found = check_every_family(text)
    rings = {s.labels["ring"]: s.labels["worker"] for s in found["feeder_ring_records_published"].samples}
    assert rings == {"book.BTC": "0", "trades.BTC": "0"}
    buckets = [
        s.value
        for s in found["feeder_record_latency_seconds"].samples
        if s.name.endswith("_bucket")
        and s.labels["ring"] == "book.BTC"
        and s.labels["stage"] == "receive_to_publish"
    ]
    assert buckets == sorted(buckets) and buckets[-1] > 0
