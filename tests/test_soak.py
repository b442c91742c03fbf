"""The soak test (scripts/soak.py): its analysis on constructed inputs, then a short real run.

The analysis tests are how we know the soak can fail: a dropped update without a GAP must come out as
undetected, a wrong top-10 without a GAP as a wrong book, a growing RSS as a leak. The real run starts
the simulator, the feeder and consumers for about 30 s with a few faults, and its report must show no
undetected loss, no wrong book and nothing left behind.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

from feeder import GAP, MARKER, SNAPSHOT, record_schema
from feeder.ring.names import SHM_DIR
from feeder.sim import book_hash
from feeder.sim.truth import TruthLog

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from soak import analysis, compare, trades  # noqa: E402
from soak.faults import KINDS, plan  # noqa: E402
from soak.monitor import still_running  # noqa: E402
from soak.observations import OBS, TRADE_OBS, ObservationLog, load_observations, record_hash  # noqa: E402
from soak.truth import book_truth, load_truth, sends, trade_truth  # noqa: E402

# --- constructed inputs ---------------------------------------------------------------------------


def true_hash(change_id: int) -> int:
    return (change_id * 2654435761) % (1 << 64)


def truth_of(*ids: int, initial: int = 99):
    """A raw-channel truth: each change chains onto the one before."""
    prevs = [initial, *ids[:-1]]
    return book_truth(ids, prevs, [true_hash(c) for c in ids])


def observed(*rows: tuple) -> np.ndarray:
    """Observations from (seq, change_id, prev_change_id, flags[, hash]); the hash defaults to the truth."""
    out = np.zeros(len(rows), OBS)
    for i, row in enumerate(rows):
        seq, cid, prev, flags = row[:4]
        out[i]["seq"], out[i]["change_id"], out[i]["prev_change_id"], out[i]["flags"] = seq, cid, prev, flags
        out[i]["hash"] = row[4] if len(row) > 4 else true_hash(cid)
        out[i]["ts_publish"] = out[i]["read_ns"] = 1_000_000 * (seq + 1)
    return out


TRUTH = truth_of(100, 101, 103, 104, 106, 107, 110)


def chain(*ids: int, start_seq: int = 0) -> list[tuple]:
    """Records for consecutive changes: a SNAPSHOT at the first, change records after."""
    rows = [(start_seq, ids[0], 0, SNAPSHOT)]
    rows += [(start_seq + i, c, p, 0) for i, (p, c) in enumerate(itertools.pairwise(ids), 1)]
    return rows


def test_a_complete_chain_has_no_findings():
    check = analysis.check_ring(observed(*chain(100, 101, 103, 104, 106, 107, 110)), TRUTH)
    assert (len(check.undetected_ids), len(check.wrong_seqs), check.reflected) == (0, 0, 6)


def test_a_dropped_update_without_gap_is_undetected():
    check = analysis.check_ring(observed(*chain(100, 101, 104, 106)), TRUTH)
    assert check.undetected_ids.tolist() == [103]


def test_a_record_that_rewrites_prev_over_a_hole_is_still_undetected_on_a_raw_channel():
    rows = [*chain(100, 101), (2, 104, 101, 0)]
    check = analysis.check_ring(observed(*rows), TRUTH)
    assert check.undetected_ids.tolist() == [103]


def test_an_aggregated_record_reflects_the_changes_it_chains_over():
    rows = [*chain(100, 101), (2, 104, 101, 0)]
    check = analysis.check_ring(observed(*rows), TRUTH, aggregated=True)
    assert (len(check.undetected_ids), check.reflected) == (0, 3)


def test_changes_between_a_gap_and_the_next_snapshot_are_covered():
    rows = [*chain(100, 101), (2, 101, 100, GAP), (3, 106, 0, SNAPSHOT), (4, 107, 106, 0)]
    check = analysis.check_ring(observed(*rows), TRUTH)
    assert (len(check.undetected_ids), check.gap_covered) == (0, 2)


def test_a_snapshot_after_missed_changes_without_a_gap_is_undetected():
    rows = [*chain(100, 101), (2, 106, 0, SNAPSHOT)]
    check = analysis.check_ring(observed(*rows), TRUTH)
    assert check.undetected_ids.tolist() == [103, 104]


def test_records_the_reader_was_lapped_over_count_as_lapping_not_undetected():
    rows = [*chain(100, 101), (7, 106, 104, 0), (8, 107, 106, 0)]
    check = analysis.check_ring(observed(*rows), TRUTH)
    assert (len(check.undetected_ids), check.reader_lost, check.reader_lost_updates) == (0, 5, 2)


def test_every_published_change_is_accounted_for_exactly_once():
    rows = [*chain(100, 101), (2, 101, 100, GAP), (3, 104, 0, SNAPSHOT), (9, 107, 106, 0), (10, 110, 107, 0)]
    c = analysis.check_ring(observed(*rows), TRUTH)
    assert c.published == c.reflected + c.gap_covered + c.reader_lost_updates + len(c.undetected_ids)


def test_a_wrong_top10_without_gap_is_a_wrong_book():
    rows = chain(100, 101, 103)
    rows[2] = (*rows[2], true_hash(103) ^ 1)
    check = analysis.check_ring(observed(*rows), TRUTH)
    assert check.wrong_seqs.tolist() == [2]


def test_a_wrong_top10_flagged_gap_is_not_a_wrong_book():
    rows = [*chain(100, 101), (2, 101, 100, GAP, 12345)]
    check = analysis.check_ring(observed(*rows), TRUTH)
    assert len(check.wrong_seqs) == 0


def test_a_change_id_the_exchange_never_published_is_a_wrong_book():
    check = analysis.check_ring(observed(*chain(100, 101, 102)), TRUTH)
    assert check.wrong_seqs.tolist() == [2]


def test_the_book_before_the_first_change_is_unverifiable_not_wrong():
    check = analysis.check_ring(observed((0, 99, 0, SNAPSHOT, 5), (1, 100, 99, 0)), TRUTH)
    assert (len(check.wrong_seqs), check.unverifiable) == (0, 1)


def test_a_change_id_going_back_without_snapshot_is_out_of_order():
    rows = [*chain(100, 101, 103), (3, 101, 100, 0)]
    check = analysis.check_ring(observed(*rows), TRUTH)
    assert check.out_of_order_seqs.tolist() == [3]


def test_a_loss_seen_by_two_consumers_counts_once():
    obs = observed(*chain(100, 101, 104))
    merged = analysis.merge_checks([analysis.check_ring(obs, TRUTH), analysis.check_ring(obs, TRUTH)])
    assert merged["undetected"] == 1


def test_failures_name_each_reason():
    rings = {"book.BTC": {"undetected": 2, "wrong_books": 1, "out_of_order": 0}}
    processes = {"worker0/7": {"leak": True, "growth_mib": 99.0}}
    leftovers = {"processes": ["sim pid 3"], "segments": ["feeder.x.book.BTC"]}
    found = analysis.failures(rings, processes, leftovers, ["the feeder exited with code 1"])
    assert len(found) == 6


def test_wrong_records_between_a_phantom_and_the_gap_that_found_it_are_exposed_not_wrong():
    rows = chain(100, 101, 103, 104)
    rows[2], rows[3] = (*rows[2], 1), (*rows[3], 2)  # the phantom makes these two wrong
    obs = observed(*rows, (4, 104, 103, GAP, 2), (5, 106, 0, SNAPSHOT))
    window = analysis.phantom_windows(int(obs["ts_publish"][2]), 10**12, analysis.timeline(obs, TRUTH))
    assert window == (int(obs["ts_publish"][2]), int(obs["ts_publish"][4]))
    check = analysis.check_ring(obs, TRUTH, phantoms=[window])
    assert (len(check.wrong_seqs), check.phantom_exposed) == (0, 2)
    assert analysis.check_ring(obs, TRUTH).wrong_seqs.tolist() == [2, 3], "without the fault they are wrong"


def test_a_phantom_no_gap_followed_is_undetected_and_fails_the_soak():
    obs = observed(*chain(100, 101, 103))
    assert analysis.phantom_windows(0, 10**12, analysis.timeline(obs, TRUTH)) is None
    missed = {"kind": "phantom", "ring": "book.BTC", "t_s": 1.0, "detected": False}
    found = analysis.failures({}, {}, {}, [], phantoms=[missed])
    assert found == ["book.BTC: the phantom fault at 1.0 s was never detected (no GAP before the next fault)"]


TRADES = trade_truth([1, 2, 3, 4, 5, 6], [10.0, 20.0, 30.0, 40.0, 50.0, 60.0])


def trade_obs(*rows: tuple) -> np.ndarray:
    """Trade observations from (seq, trade_seq, amount, flags)."""
    out = np.zeros(len(rows), TRADE_OBS)
    for i, (seq, trade_seq, amount, flags) in enumerate(rows):
        out[i]["seq"], out[i]["trade_seq"], out[i]["amount"], out[i]["flags"] = seq, trade_seq, amount, flags
    return out


def test_trades_summed_over_non_marker_records_equal_the_exchanges_volume():
    obs = trade_obs(
        (0, 1, 10.0, 0), (1, 2, 20.0, 0), (2, 0, 0.0, MARKER | GAP), (3, 4, 40.0, GAP), (4, 5, 50.0, 0)
    )
    check = trades.check_trades(obs, TRADES)
    assert (check.markers, check.duplicates, check.wrong, check.undetected, check.gap_covered) == (
        1,
        0,
        0,
        0,
        1,
    )
    assert check.volume_read == check.volume_of_read == 120.0
    assert check.volume_in_window - check.volume_missed_flagged == 120.0


def test_a_trade_repeated_as_a_gap_copy_is_a_duplicate():
    obs = trade_obs((0, 1, 10.0, 0), (1, 2, 20.0, 0), (2, 2, 20.0, GAP), (3, 3, 30.0, 0))
    check = trades.check_trades(obs, TRADES)
    assert check.duplicates == 1 and check.volume_read == 80.0 != check.volume_in_window


def test_a_trade_missed_without_a_flag_is_undetected_and_a_lapped_reader_is_not():
    assert trades.check_trades(trade_obs((0, 1, 10.0, 0), (1, 3, 30.0, 0)), TRADES).undetected == 1
    lapped = trades.check_trades(trade_obs((0, 1, 10.0, 0), (5, 3, 30.0, 0)), TRADES)
    assert (lapped.undetected, lapped.reader_lost) == (0, 1)


def test_a_trade_with_another_amount_than_the_exchanges_is_wrong():
    assert trades.check_trades(trade_obs((0, 1, 10.0, 0), (1, 2, 21.0, 0)), TRADES).wrong == 1


# --- latency, recovery, resources -----------------------------------------------------------------


def test_send_time_is_the_last_send_of_the_change_before_it_was_received():
    s = sends([101, 100, 101], [50, 10, 500])  # 101 sent twice: as a change, then re-sent as a snapshot
    obs = observed(*chain(100, 101))
    obs["ts_recv"] = [20, 60]
    assert analysis.send_times(obs, s).tolist() == [10, 50]


def test_gap_records_get_no_latency():
    obs = observed((0, 100, 0, GAP))
    obs["ts_recv"] = 20
    assert analysis.send_times(obs, sends([100], [10])).tolist() == [-1]


def test_latency_windows_split_by_time():
    found = analysis.windows(np.array([0.1, 0.2, 1.5]), np.array([1000, 3000, 7000]), 1.0)
    assert [(w["t_s"], w["count"], w["max_us"]) for w in found] == [(0.0, 2, 3.0), (1.0, 1, 7.0)]


def recovery_timeline() -> dict:
    obs = observed((0, 100, 0, SNAPSHOT), (1, 100, 0, GAP), (2, 103, 0, SNAPSHOT, 1), (3, 104, 0, SNAPSHOT))
    obs["ts_publish"] = [1e9, 3e9, 4e9, 5e9]
    return {"book.BTC": analysis.timeline(obs, TRUTH)}


def test_recovery_runs_from_the_fault_to_the_next_valid_snapshot():
    found = analysis.recovery(int(2e9), int(10e9), ["book.BTC"], recovery_timeline())
    assert (found["detect_s"], found["recovery_s"]) == (1.0, 3.0)


def test_a_fault_without_a_gap_disrupts_nothing():
    found = analysis.recovery(int(3.5e9), int(10e9), ["book.BTC"], recovery_timeline())
    assert found["disrupted"] == []


def test_blind_time_runs_from_the_fault_to_the_next_valid_record_after_its_gap():
    found = analysis.blind(int(2e9), int(10e9), ["book.BTC"], recovery_timeline())
    assert found == {"blind_s": 2.0, "quiet_s": 2.0}  # GAP at 3 s, the next valid record at 4 s


def test_a_fault_without_a_gap_leaves_no_blind_time_but_its_quiet_time_shows():
    found = analysis.blind(int(4.5e9), int(10e9), ["book.BTC"], recovery_timeline())
    assert found == {"blind_s": 0.0, "quiet_s": 0.5}


def test_a_book_that_never_comes_back_is_blind_without_end():
    obs = observed((0, 100, 0, SNAPSHOT), (1, 100, 0, GAP))
    obs["ts_publish"] = [1e9, 3e9]
    found = analysis.blind(int(2e9), int(10e9), ["book.BTC"], {"book.BTC": analysis.timeline(obs, TRUTH)})
    assert found == {"blind_s": None, "quiet_s": 8.0}


def test_a_phantom_whose_copy_never_reached_the_ring_needs_no_detection():
    obs = observed(*chain(100, 101, 103))
    tl = analysis.timeline(obs, TRUTH)
    assert not analysis.phantom_shown(0, 10**12, tl)
    harmless = {"kind": "phantom", "ring": "book.BTC", "t_s": 1.0, "detected": False, "shown": False}
    assert analysis.failures({}, {}, {}, [], phantoms=[harmless]) == []
    rows = chain(100, 101, 103)
    rows[2] = (*rows[2], 1)
    assert analysis.phantom_shown(0, 10**12, analysis.timeline(observed(*rows), TRUTH))


def _fake_report(blinds: list[float | None], ok: bool = True) -> dict:
    events = [{"kind": kind, "t_s": float(i), "rings": ["book.BTC"], "blind_s": b, "quiet_s": b or 0.01}
              for i, (kind, b) in enumerate(zip(("drop", "gap", "kill_worker"), blinds, strict=True))]  # fmt: skip
    overall = {"count": 10, "p50_us": 100.0, "p99_us": 900.0, "max_us": 1e4}
    return {"ok": ok, "failures": [], "totals": {"gap_records": 3}, "faults": {"events": events},
            "latency": {"overall": overall}, "sim": {"achieved_rate": 999.0}}  # fmt: skip


def test_the_comparison_puts_each_fault_of_both_runs_side_by_side():
    found = compare.compare({1: _fake_report([1.5, 0.2, 0.04]), 2: _fake_report([0.0, 0.0, 0.05])})
    assert [(r["kind"], r["r1"]["blind_s"], r["r2"]["blind_s"]) for r in found["faults"]] == [
        ("drop", 1.5, 0.0),
        ("gap", 0.2, 0.0),
        ("kill_worker", 0.04, 0.05),
    ]
    two = found["runs"][2]
    assert (two["single_connection_faults"], two["single_connection_blind_zero"], two["blind_max_s"]) == (
        2,
        2,
        0.05,
    )
    text = compare.summary(found)
    assert "redundancy 2: PASS" in text and "after 2 of 2 single-connection faults" in text


def samples(role: str, rss_mib: list[float], start: int = 0) -> list[analysis.Sample]:
    return [analysis.Sample(float(start + t), role, 7, int(m * 2**20), 1.0) for t, m in enumerate(rss_mib)]


RULE = analysis.LeakRule(warmup_s=10, mib=64, process_warmup_s=5, min_span_s=20)


def test_rss_growing_after_warmup_is_a_leak():
    found = analysis.resources(samples("worker0", [100 + 5 * t for t in range(60)]), RULE)
    assert found["worker0/7"]["leak"]


def test_flat_rss_after_warmup_is_no_leak():
    found = analysis.resources(samples("worker0", [100 + 5 * min(t, 10) for t in range(60)]), RULE)
    assert found["worker0/7"]["judged"] and not found["worker0/7"]["leak"]


def test_a_process_started_later_is_judged_after_its_own_warmup():
    ramp_then_flat = [10 + 50 * min(t, 4) for t in range(60)]  # a restarted worker importing, then steady
    found = analysis.resources(samples("worker0", ramp_then_flat, start=100), RULE)
    assert found["worker0/7"]["judged"] and not found["worker0/7"]["leak"]


def test_a_process_seen_briefly_after_warmup_is_not_judged():
    found = analysis.resources(samples("worker0", [100 + 50 * t for t in range(15)]), RULE)
    assert not found["worker0/7"]["judged"]


# --- formats shared with the simulator and the ring -------------------------------------------------


def test_the_logged_hash_is_the_simulators_book_hash():
    rng = np.random.default_rng(1)
    record = np.zeros(1, record_schema("book").dtype)
    for name in ("bid_px", "bid_sz", "ask_px", "ask_sz"):
        record[name][0, :7] = rng.uniform(1, 1e5, 7)
    r = record[0]
    assert record_hash(r) == book_hash(r["bid_px"][:7], r["bid_sz"][:7], r["ask_px"][:7], r["ask_sz"][:7])


def test_observations_come_back_as_logged(tmp_path: Path):
    records = np.zeros(3, record_schema("book").dtype)
    records["seq"], records["change_id"], records["flags"] = [5, 6, 7], [10, 11, 12], [SNAPSHOT, 0, GAP]
    with open(tmp_path / "obs.bin", "wb") as f:
        log = ObservationLog(f, chunk=2)
        log.add(3, records, 42)
        log.flush()
    back = load_observations(tmp_path / "obs.bin")
    assert (back["seq"].tolist(), back["ring"].tolist(), back["read_ns"].tolist()) == (
        [5, 6, 7],
        [3] * 3,
        [42] * 3,
    )


def test_a_truth_log_written_by_the_simulator_parses(tmp_path: Path):
    log = TruthLog(str(tmp_path / "truth.log"))
    log.change("BTC-PERPETUAL", 11, 10, 1, 2**64 - 1)
    log.change("BTC-PERPETUAL", 13, 11, 1, 5)
    log.sent("book.BTC-PERPETUAL.raw", 13, 11, 999)
    log.trade("BTC-PERPETUAL", 7, 0.1)
    log.close()
    truth = load_truth(tmp_path / "truth.log")
    assert (
        truth.trades["BTC-PERPETUAL"].trade_seq.tolist(),
        truth.trades["BTC-PERPETUAL"].amount.tolist(),
    ) == (
        [7],
        [0.1],
    )
    book, sent = truth.books["BTC-PERPETUAL"], truth.sends["book.BTC-PERPETUAL.raw"]
    assert (book.change_id.tolist(), book.hash.tolist(), book.initial, sent.send_ns.tolist()) == (
        [11, 13],
        [2**64 - 1, 5],
        10,
        [999],
    )


def test_faults_by_kind_put_detection_beside_recovery_over_the_faults_that_made_a_gap():
    from soak.report import _by_kind

    def event(kind, detect, recovery, blind, disrupted=True):
        return {
            "kind": kind,
            "disrupted": disrupted,
            "detect_s": detect,
            "recovery_s": recovery,
            "blind_s": blind,
        }

    events = [
        event("stall", 1.6, 2.1, 2.1),
        event("stall", 1.8, 2.5, 2.5),
        event("stall", None, None, 0.0, disrupted=False),
        event("gap", 0.001, 0.05, 0.05),
        {"kind": "gap", "error": "LookupError: nothing carried", "disrupted": False},
    ]
    rows = _by_kind(events)
    assert rows["stall"] == {
        "faults": 3, "disrupting": 2, "detect_p50_s": 1.7, "detect_max_s": 1.8, "recovery_p50_s": 2.3,
        "recovery_max_s": 2.5, "blind_p50_s": 2.1, "blind_max_s": 2.5,
    }  # fmt: skip
    assert (rows["gap"]["faults"], rows["gap"]["detect_max_s"]) == (1, 0.001)


def test_the_fault_plan_uses_every_kind_before_repeating_one():
    planned = plan(KINDS, len(KINDS) + 3, 10.0, 100.0, seed=3)
    assert sorted(p.kind for p in planned[: len(KINDS)]) == sorted(KINDS)


def test_the_fault_plan_is_evenly_spaced_between_first_and_last():
    planned = plan(("gap",), 4, 10.0, 40.0, seed=3)
    assert [p.t_s for p in planned] == [10.0, 20.0, 30.0, 40.0]


# --- the real thing, short --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def soak(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One short soak run: 2 workers, 2 consumers (one lapped on purpose), 6 faults, about 30 s."""
    out = tmp_path_factory.mktemp("soak")
    instance = f"tsoak{uuid.uuid4().hex[:8]}"
    cmd = [
        sys.executable, str(ROOT / "scripts" / "soak.py"), "--duration", "30", "--rate", "1000",
        "--workers", "2", "--consumers", "2", "--instruments", "2", "--streams", "book,trades", "--faults", "6",
        "--fault-kinds", "gap,drop,kill_worker,phantom,phantom_cross,slow_consumer", "--book-capacity", "256",
        "--lead", "3", "--settle", "8", "--audit-interval", "2", "--instance", instance, "--out", str(out),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=170)
    report_path = out / "soak-report.json"
    assert report_path.is_file(), f"no report; exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    report = json.loads(report_path.read_text())
    report["exit_code"] = proc.returncode
    report["instance"] = instance
    return report


def test_the_short_soak_finds_no_undetected_loss(soak: dict):
    assert soak["totals"]["undetected"] == 0, soak["rings"]


def test_the_short_soak_finds_no_wrong_book(soak: dict):
    assert soak["totals"]["wrong_books"] == 0, soak["rings"]


def test_the_short_soak_leaves_no_process_behind(soak: dict):
    starts = soak["process_starts"]
    assert any(name.startswith("worker") for name in starts), starts
    alive = [name for name, created in starts.items() if still_running(int(name.split("/")[1]), created)]
    assert (soak["leftovers"]["processes"], alive) == ([], [])


def test_the_short_soak_leaves_no_segment_behind(soak: dict):
    left = sorted(Path(SHM_DIR).glob(f"feeder.{soak['instance']}.*"))
    assert (soak["leftovers"]["segments"], left) == ([], [])


def test_the_short_soak_faults_made_the_feeder_flag_gaps_and_recover(soak: dict):
    faults = soak["faults"]
    assert faults["disrupting"] >= 2 and faults["unrecovered"] == 0, faults["events"]
    gapped = [row for row in faults["by_kind"].values() if row["disrupting"]]
    assert gapped and all(row["detect_max_s"] is not None for row in gapped), faults["by_kind"]


def test_the_short_soaks_slow_consumer_was_lapped_and_knew_it(soak: dict):
    assert soak["totals"]["reader_lost"][1] > 0


def test_the_short_soak_detects_every_phantom_and_audits_its_books(soak: dict):
    assert len(soak["phantoms"]) == 2 and all(p["detected"] for p in soak["phantoms"]), soak["phantoms"]
    assert soak["audits"]["totals"]["passed"] > 0 and soak["audits"]["totals"]["failed"] <= 2


def test_the_short_soak_counts_every_trade_once(soak: dict):
    checks = list(soak["trades"].values())
    assert checks and all(c["duplicates"] == c["wrong"] == c["undetected"] == 0 for c in checks), checks
    assert all(c["volume_read"] == c["volume_of_read"] for c in checks)


def test_the_short_soak_passes(soak: dict):
    assert (soak["exit_code"], soak["failures"]) == (0, [])
