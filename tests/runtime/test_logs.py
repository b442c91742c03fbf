"""Quiet, honest logs: a clean run of the real program, start to stop, logs no WARNING or ERROR."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from runtime.feederkit import cleanup_run_dir

NOISE = re.compile(r"\b(WARNING|ERROR|CRITICAL)\b|Traceback")


def noise(output: str) -> list[str]:
    """The lines of a feeder's output a user would read as trouble."""
    return [line for line in output.splitlines() if NOISE.search(line)]


def test_a_clean_run_on_the_simulator_logs_no_warning_or_error_from_start_to_stop(instance):
    # two workers, as by default, unless this machine has one CPU (then two would rightly warn)
    workers = str(min(2, len(os.sched_getaffinity(0))))
    try:
        out = subprocess.run(
            [sys.executable, "-m", "feeder", "--sim", "--duration", "10", "--workers", workers],
            capture_output=True, text=True, timeout=150,
        )  # fmt: skip
    finally:
        cleanup_run_dir(instance)
    output = out.stdout + out.stderr
    assert out.returncode == 0, output
    assert len(re.findall(r"worker \d \(pid \d+\) running", output)) == int(workers), output
    assert re.search(r"book\.BTC +book +[1-9]\d*", output), "the final status shows records in book.BTC"
    assert f"feeder instance {instance!r} stopped" in output
    assert noise(output) == [], output
    # every connection's setup and end is said once, by the client; not again by the WebSocket library
    assert not re.search(r" INFO (picows|websockets)\b", output), output
