"""The adapter benchmark (scripts/bench_adapter.py), in a tiny run: the real path applies every message
warm and cold, its frames are counted, and every book variant and target the report promises is there."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_short_run_measures_the_real_path_its_stages_and_the_books(tmp_path: Path):
    cmd = [sys.executable, str(ROOT / "scripts" / "bench_adapter.py"), "--json", "--messages", "2000"]
    cmd += ["--cold-messages", "50", "--repeat", "1"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=170, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert (report["messages"], report["cold_messages"]) == (2000, 50)
    for key in ("real_path_warm", "real_path_cold"):
        assert 0 < report[key]["median_us"] <= report[key]["p99_us"], report[key]
    assert set(report["stages"]) == {"decode", "validate+apply", "record", "publish", "total"}
    assert set(report["books"]) == {
        "one pass, only what changed",
        "one pass, always repack",
        "parse, then apply, repack",
        "dict + nlargest",
    }
    assert report["frames_per_message"]["python_frames"] >= 1
    assert set(report["targets"]) == {"warm_median_us", "cold_median_us", "warm_met", "cold_met"}
    assert set(report["publish_per_record_ns"]) == {"1", "5", "10"}
