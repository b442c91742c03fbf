"""scripts/bench_mirror.py --quick: one short phase of the feeder path and of the bare nats-py loop, each
through a real nats-server; checks the report is complete and that nothing was lost. No timing asserts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_quick_benchmark_reports_both_paths_side_by_side(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_mirror.py"), "--quick", "--json", str(out)],
        capture_output=True, text=True, timeout=170,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    (row,) = report["latency"]
    feeder, bare = row["feeder"][0], row["bare"][0]
    assert feeder["received"] == feeder["sent"] > 0 and row["lost"] == 0
    assert bare["received"] == bare["sent"] > 0
    for key in ("p50_us", "p99_us", "mirror_cpu_us", "replica_cpu_us", "bare_p50_us", "bare_pub_cpu_us"):
        assert row[key] is not None and row[key] > 0, key
    assert "ratios cpu" in done.stdout
