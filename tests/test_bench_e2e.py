"""The end-to-end benchmark (scripts/bench_e2e.py): its arithmetic on constructed inputs, then a tiny run.

The analysis tests are how we know the benchmark can say "not sustained": a change_id that never
arrived is lost, a GAP-flagged record is flagged, a queue that grows is growing latency. The smoke run
starts both pipelines for one short trial each (and the feeder once more for the per-instrument cost)
and checks the report is complete and well formed; it asserts nothing about timings.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from bench_e2e.analysis import (  # noqa: E402
    SIM_BOUND,
    SIM_SHORT,
    SUSTAINED,
    Received,
    analyse,
    highest_sustained,
    mark_simulator_bound,
)

MS = 1_000_000
T0, T1 = 1_000 * MS, 2_000 * MS  # a one-second window


def sent_rows(*rows: tuple[int, int]) -> np.ndarray:
    """[change_id, send_ns] rows of one channel."""
    return np.array(rows, np.int64).reshape(-1, 2)


def received(*rows: tuple, reader_lost: int = 0) -> Received:
    """From (channel, change_id, recv_ns[, flagged]) rows, in arrival order."""
    return Received(
        chan=np.array([r[0] for r in rows], np.int32),
        cid=np.array([r[1] for r in rows], np.int64),
        recv_ns=np.array([r[2] for r in rows], np.int64),
        flagged=np.array([bool(r[3]) if len(r) > 3 else False for r in rows]),
        reader_lost=reader_lost,
    )


def steady(n: int, latency_ns: int, channel: int = 0, first_cid: int = 100) -> tuple[np.ndarray, list]:
    """n updates spread over the window, each arriving `latency_ns` after it was sent."""
    sends = [(first_cid + 3 * i, T0 + i * (T1 - T0) // n) for i in range(n)]
    return sent_rows(*sends), [(channel, cid, ns + latency_ns) for cid, ns in sends]


# --- the analysis on constructed inputs --------------------------------------------------------------


def test_every_update_arriving_promptly_is_sustained_with_its_latency():
    rows, got = steady(100, 200_000)
    figures = analyse([rows], received(*got), T0, T1, rate=100)
    assert figures["verdict"] == SUSTAINED
    assert (figures["sent"], figures["received"], figures["lost"]) == (100, 100, 0)
    assert figures["latency_us"]["p50"] == 200.0


def test_a_change_id_that_never_arrived_is_lost():
    rows, got = steady(100, 200_000)
    del got[40]
    figures = analyse([rows], received(*got), T0, T1, rate=100)
    assert figures["lost"] == 1
    assert figures["verdict"] == "lost 1"


def test_updates_sent_outside_the_window_are_not_counted():
    rows = sent_rows((1, T0 - MS), (2, T0 + MS), (3, T1 + MS))
    figures = analyse([rows], received((0, 2, T0 + 2 * MS)), T0, T1, rate=1)
    assert (figures["sent"], figures["lost"]) == (1, 0)


def test_a_gap_flagged_record_is_not_sustained():
    rows, got = steady(100, 200_000)
    got[10] = (*got[10], True)
    figures = analyse([rows], received(*got), T0, T1, rate=100)
    assert figures["flagged"] == 1
    assert "GAP" in figures["verdict"]


def test_records_lost_to_lapping_are_not_sustained():
    rows, got = steady(100, 200_000)
    figures = analyse([rows], received(*got, reader_lost=5), T0, T1, rate=100)
    assert figures["verdict"] == "lost 5"


def test_a_resent_snapshot_with_the_same_change_id_is_neither_loss_nor_disorder():
    rows, got = steady(100, 200_000)
    got.insert(51, (0, got[50][1], got[50][2] + 1_000))
    figures = analyse([rows], received(*got), T0, T1, rate=100)
    assert (figures["out_of_order"], figures["verdict"]) == (0, SUSTAINED)


def test_updates_delivered_out_of_order_are_not_sustained():
    rows, got = steady(100, 200_000)
    got[20], got[21] = got[21], got[20]
    figures = analyse([rows], received(*got), T0, T1, rate=100)
    assert figures["out_of_order"] == 1
    assert "out of order" in figures["verdict"]


def test_latency_that_grows_through_the_window_is_not_sustained():
    rows = sent_rows(*[(100 + i, T0 + i * 10 * MS) for i in range(100)])
    got = [(0, 100 + i, T0 + i * 10 * MS + i * 100_000) for i in range(100)]  # 0.1 ms more each time
    figures = analyse([rows], received(*got), T0, T1, rate=100)
    assert figures["verdict"] == "latency growing"


def test_a_standing_queue_far_behind_is_not_sustained():
    rows, got = steady(100, 300 * MS)
    figures = analyse([rows], received(*got), T0, T1, rate=100)
    assert figures["verdict"].startswith("p50 over")


def test_a_simulator_that_could_not_produce_the_rate_says_so():
    rows, got = steady(100, 200_000)
    figures = analyse([rows], received(*got), T0, T1, rate=1_000)
    assert figures["verdict"] == SIM_SHORT


def test_a_simulator_that_fell_behind_makes_the_trial_inconclusive_whatever_the_pipeline_did():
    rows, got = steady(100, 300 * MS)
    figures = analyse([rows], received(*got), T0, T1, rate=100, simulator_lagged=500)
    assert figures["verdict"].startswith(SIM_SHORT)
    assert highest_sustained([{"rate": 100, "verdict": figures["verdict"]}])["simulator_capped"]


def test_channels_are_joined_separately():
    rows0, got0 = steady(50, 100_000, channel=0)
    rows1, got1 = steady(50, 300_000, channel=1)  # same change_ids as channel 0, other instrument
    figures = analyse([rows0, rows1], received(*got0, *got1), T0, T1, rate=100)
    assert (figures["sent"], figures["received"], figures["lost"]) == (100, 100, 0)
    assert figures["latency_us"]["max"] == 300.0


def test_a_pipeline_restart_is_not_sustained():
    rows, got = steady(100, 200_000)
    figures = analyse([rows], received(*got), T0, T1, rate=100, restarts=1)
    assert figures["verdict"] == "1 pipeline restart(s)"


def test_the_highest_sustained_rate_stops_at_the_first_failure():
    trials = [
        {"rate": 1_000, "verdict": SUSTAINED},
        {"rate": 5_000, "verdict": SUSTAINED},
        {"rate": 10_000, "verdict": "lost 3"},
        {"rate": 20_000, "verdict": SUSTAINED},
    ]
    assert highest_sustained(trials) == {"rate": 5_000, "simulator_capped": False}


def test_the_highest_sustained_rate_notes_a_simulator_cap():
    trials = [{"rate": 1_000, "verdict": SUSTAINED}, {"rate": 50_000, "verdict": SIM_SHORT}]
    assert highest_sustained(trials) == {"rate": 1_000, "simulator_capped": True}


# --- a real, tiny run -----------------------------------------------------------------------------


def test_a_short_run_reports_the_simulator_both_pipelines_and_the_feeder_cost(tmp_path: Path):
    cmd = [sys.executable, str(ROOT / "scripts" / "bench_e2e.py"), "--quick", "--json", "--seconds", "1"]
    cmd += ["--rates", "1000", "--counts", "3", "--idle-counts", "1", "--idle-seconds", "0.5"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=170, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    trials = [*report["ramp"]["simulator"], *report["ramp"]["feeder"], *report["ramp"]["cryptofeed"]]
    trials += report["scaling"]
    assert [t["pipeline"] for t in trials] == ["simulator", "feeder", "cryptofeed", "feeder"]
    for trial in trials:
        assert not trial["verdict"].startswith("error"), trial["verdict"]
        assert trial["sent"] > 0 and trial["received"] > 0, trial
        assert set(trial["latency_us"]) == {"p50", "p90", "p99", "p99.9", "max"}
        assert trial["cpu"]["us_per_update"]["pipeline"] > 0
    assert set(report["ramp"]["feeder"][0]["stages_us"]) == {
        "simulator send -> worker receive",
        "worker receive -> ring publish",
        "ring publish -> strategy has it",
    }
    [row] = report["summary"]["by_rate"]
    assert row["rate"] == 1000
    assert row["p50_us"]["ratio"] == round(row["p50_us"]["feeder"] / row["p50_us"]["cryptofeed"], 3)
    assert set(report["summary"]["targets"]["p50_ratio_at_fixed_rates"]) == {"1000"}
    ceiling = report["summary"]["simulator_ceiling"]
    assert ceiling["rate"] in (None, 1000) and isinstance(ceiling["above_ladder"], bool)
    worker = report["summary"]["worker"]["1000"]
    assert set(worker) == {"p50_us", "p99_us", "cpu_us_per_update"}
    assert worker["cpu_us_per_update"]["value"] > 0 and worker["cpu_us_per_update"]["at_most"] == 25.0
    assert [(r["instruments"], r["audit"]) for r in report["idle"]] == [(1, True), (1, False)]
    for row in report["idle"]:
        assert row["cpu_ms_per_s"]["worker0"] >= 0 and "supervisor" in row["cpu_ms_per_s"], row
    scaling = report["scaling"][0]
    assert scaling["instruments"] == 3
    assert scaling["memory"]["rings"]["count"] == 3
    assert scaling["memory"]["worker0"]["rss_mb"] > 0


def test_a_trial_above_the_simulators_ceiling_that_failed_is_simulator_bound():
    trials = [
        {"rate": 10_000, "verdict": SUSTAINED},
        {"rate": 20_000, "verdict": "lost 3"},
        {"rate": 40_000, "verdict": "latency growing"},
    ]
    mark_simulator_bound(trials, ceiling=20_000)
    assert [t["verdict"] for t in trials] == [
        SUSTAINED,
        "lost 3",
        "simulator-bound (ceiling 20,000/s): latency growing",
    ]
    assert highest_sustained(trials) == {"rate": 10_000, "simulator_capped": False}
    mark_simulator_bound(trials, ceiling=10_000)
    assert trials[1]["verdict"].startswith(SIM_BOUND)
    assert highest_sustained(trials) == {"rate": 10_000, "simulator_capped": True}
