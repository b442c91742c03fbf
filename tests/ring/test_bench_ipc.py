"""The IPC benchmark (scripts/bench_ipc.py), in a tiny run: every ring reader delivers everything, and
every figure the report promises is there, the futex wake-up floor included."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
READERS = ("ring", "ring-block", "ring-async")


def test_a_short_run_measures_the_three_ring_readers_and_the_publish_variants(tmp_path: Path):
    cmd = [sys.executable, str(ROOT / "scripts" / "bench_ipc.py"), "--quick", "--json", "--seconds", "1"]
    cmd += ["--transports", ",".join(READERS), "--rates", "1000", "--trials", "latency at 1000/s, 1 reader"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=170, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    [trial] = report["trials"].values()
    assert set(trial) == set(READERS)
    for kind, result in trial.items():
        assert result["sent"] == 1000 and result["lost_max"] == 0, (kind, result)
        assert 0 < result["p50"] <= result["p99"], (kind, result)
        assert result["reader_cpu_us_per_record"] > 0 and result["send_ns"] > 0, (kind, result)
    [floor] = report["wake_floor"]
    assert floor["rate"] == 1000 and 0 < floor["p50"] <= floor["p99"] and floor["wake_call_ns"] > 0
    costs = report["ring_publish_ns"]
    assert "sleepers check alone" in costs and "claim() + commit(), nothing written" in costs
    assert all(cost["median"] > 0 for name, cost in costs.items() if name != "sleepers check alone")
