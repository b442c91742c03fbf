"""The short version of scripts/bench_recording.py: both storages write, load back the same records, report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_recording_benchmark_runs_and_compares_the_storages():
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_recording.py"), "--quick", "--json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert set(report["median"]) == {"npy", "parquet"} and report["median"]["npy"]["bytes_per_record"] >= 384
    assert set(report["parquet_over_npy"]) == set(report["median"]["npy"])
