"""The feeder at rest: what a worker and the supervisor cost per second when no update comes.

A worker's own heartbeat to the supervisor, its metrics, its timers (the silence probe, the audit
schedule) run whatever the market does; this trial subscribes N instruments' books on a simulator
publishing nothing and measures the CPU each process uses over a window, with the live audit on (its
default interval: its requests are part of the cost) and off.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from dataclasses import replace

from bench_e2e.pipelines import Bench, FeederPipeline, TrialSpec, _cpu_seconds, _pin, _sim_config, _wait_ready
from feeder.sim import SimServer


def idle_cost(instruments: int, seconds: float, bench: Bench, audit: bool) -> dict:
    """CPU ms per second of the worker and of the supervisor with `instruments` quiet books."""
    spec = TrialSpec("feeder", instruments, 0.0, 0.0, seconds)
    with tempfile.TemporaryDirectory(prefix="bench-e2e-idle-") as workdir, contextlib.ExitStack() as stack:
        config = bench.feeder_config
        if not audit:
            config = os.path.join(workdir, "no-audit.toml")
            with open(config, "w") as f:
                f.write("audit_interval = 0\n" + _text(bench.feeder_config))  # before any [table]
        sim = stack.enter_context(SimServer(_sim_config(spec)))
        _pin(sim.pid, bench.layout.sim)
        names = sim.info()["active"]
        pipeline = FeederPipeline(replace(bench, feeder_config=config))
        stack.callback(pipeline.stop)
        pipeline.start(sim, names, workdir, spec)
        _wait_ready(sim, pipeline, len(names))
        processes = {k: v for k, v in pipeline.processes().items() if k != "strategy"}
        time.sleep(1.0)  # the readiness pokes' records are through
        before = _cpu_seconds(processes)
        time.sleep(seconds)
        after = _cpu_seconds(processes)
    used = {role: round((after[role] - before[role]) * 1e3 / seconds, 2) for role in before if role in after}
    return {"instruments": instruments, "audit": audit, "seconds": seconds, "cpu_ms_per_s": used}


def _text(path: str | None) -> str:
    if path is None:
        return ""
    with open(path) as f:
        return f.read()
