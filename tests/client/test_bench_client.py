"""The client benchmark (scripts/bench_client.py) in a tiny run: every section reports, for both links.
It asserts nothing about timings (those belong to the script's own runs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from feeder.client.transport import picows_installed

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_client.py"


def test_a_tiny_run_reports_every_variant_section_and_stall(tmp_path):
    out = tmp_path / "bench.json"
    args = ["--messages", "2000", "--rounds", "1", "--rounds-cpu", "1", "--seconds", "0.3", "--stalls", "1"]
    args += ["--connections", "3", "--pending", "20", "--json", str(out)]
    done = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=170)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    engines = ["websockets", *(["picows"] if picows_installed() else [])]
    variants = {"websockets recv", "subclass (before)", "Sans-I/O link", *(f"Client ({e})" for e in engines)}
    assert variants <= set(result["cpu_us_per_msg"])
    assert all(v > 0 for v in result["cpu_us_per_msg"].values())
    assert {f"Client ({e}): µs CPU per message at 1000/s" for e in engines} <= set(result["cpu_at_rates"])
    stalls = {f"{e}{p}": 1 for e in engines for p in ("", ", pongs answered")}
    assert stalls == {e: len(t) for e, t in result["stall_to_gap_s"].items()}
    assert "stall → GAP on every book" in done.stdout
