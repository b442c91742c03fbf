"""Running the soak: simulator, feeder and consumers up, faults on schedule, everything down, leftovers.

Rules kept here:
- Each part is its own process: the simulator (`SimServer`, with its truth log), the feeder (`python -m
  feeder --url ...`, demo credentials in its environment so it uses raw channels), and the consumers
  (`python -m soak.consumer`), each in its own session so a process group can be killed whole.
- The clock starts when every worker is connected; faults run from `lead_s` to `duration - settle_s`,
  so the last one has time to recover before the feeder is stopped.
- Shutdown is the feeder's own (SIGTERM: final GAP records, rings closed and removed); consumers then
  drain and exit by themselves. Whatever is still there afterwards is recorded as a leftover first,
  then killed and removed, also when the soak itself fails half-way (try/finally).
"""

from __future__ import annotations

import contextlib
import heapq
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from feeder.exchanges.deribit.channels import ChannelConfig, ChannelMap
from feeder.ring.names import SHM_DIR
from feeder.runtime.rundir import run_dir
from feeder.sim import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, SimServer
from soak.faults import Injector, Planned, plan
from soak.monitor import Monitor

SCRIPTS = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 60.0
CONSUMER_EXIT_S = 30.0


@dataclass(frozen=True)
class Options:
    duration: float
    rate: float
    workers: int
    consumers: int
    faults: int
    instruments: int
    streams: str
    kinds: tuple[str, ...]
    seed: int
    out: Path
    book_capacity: int | None
    hang_timeout: float
    lead_s: float
    settle_s: float
    warmup_s: float
    window_s: float
    sample_s: float
    leak_mib: float
    keep_data: bool
    audit_interval: float = 5.0
    redundancy: int = 1  # the feeder's connections per worker


@dataclass
class RunData:
    """Everything the analysis needs from a finished run."""

    options: Options
    instance: str
    instruments: list[str] = field(default_factory=list)
    rings: list[str] = field(default_factory=list)  # book rings, in the consumers' order
    trade_rings: list[str] = field(default_factory=list)  # trades rings, read by consumer 0
    trade_log: Path | None = None
    t0_ns: int = 0  # wall clock when the clock started (everything connected)
    end_ns: int = 0  # wall clock when the feeder was asked to stop
    truth_path: Path = Path()
    consumer_logs: list[Path] = field(default_factory=list)
    consumer_summaries: list[Path] = field(default_factory=list)
    slow_consumer: int | None = None
    faults: list[dict] = field(default_factory=list)
    monitor: Monitor | None = None
    sim_stats: dict = field(default_factory=dict)
    final_status: dict = field(default_factory=dict)
    feeder_exit: int | None = None
    consumer_exits: list[Any] = field(default_factory=list)
    leftover_processes: list[str] = field(default_factory=list)
    leftover_segments: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    loadavg: list[float] = field(default_factory=list)  # 1-minute load average at the start and the end


def new_instance() -> str:
    return f"soak{os.getpid()}{uuid.uuid4().hex[:6]}"


def lap_seconds(capacity: int, rate: float, instruments: int) -> float:
    """How long the slow consumer pauses: 1.5 times what a book ring takes to wrap, 2-90 s."""
    per_ring = max(rate / max(instruments, 1), 1.0)
    return round(min(max(1.5 * capacity / per_ring, 2.0), 90.0), 1)


class Soak:
    def __init__(self, options: Options, instance: str | None = None):
        self.o = options
        self.data = RunData(options, instance or new_instance())
        self.feeder: subprocess.Popen | None = None
        self.consumers: list[subprocess.Popen] = []
        self.sim: SimServer | None = None
        self.logs: list[Any] = []

    # --- the whole run -----------------------------------------------------------------------------

    def run(self) -> RunData:
        o, d = self.o, self.data
        o.out.mkdir(parents=True, exist_ok=True)
        d.truth_path = o.out / "truth.log"
        d.truth_path.unlink(missing_ok=True)
        try:
            self._start_sim()
            self._start_feeder()
            self._start_consumers()
            self._wait_connected()
            self._drive()
            self._stop_all()
        except Exception as exc:
            d.errors.append(f"the soak run failed: {type(exc).__name__}: {exc}")
        finally:
            self._cleanup()
        return d

    def _start_sim(self) -> None:
        self.sim = SimServer(
            instruments=self.o.instruments,
            rate=self.o.rate,
            seed=self.o.seed,
            truth_log=str(self.data.truth_path),
        ).start()
        self.data.instruments = self.sim.info()["active"]
        channels = ChannelMap(ChannelConfig(), authenticated=True)
        self.data.rings = [channels.ring_name("book", i) for i in self.data.instruments]
        if "trades" in self.o.streams.split(","):
            self.data.trade_rings = [channels.ring_name("trades", i) for i in self.data.instruments]

    def _feeder_config(self) -> Path:
        lines = [
            f"hang_timeout = {self.o.hang_timeout}",
            f"audit_interval = {self.o.audit_interval}",
            f"redundancy = {self.o.redundancy}",
        ]
        if self.o.book_capacity:
            lines.append(f"capacity = {{ book = {self.o.book_capacity} }}")
        path = self.o.out / "feeder.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def _start_feeder(self) -> None:
        o, d = self.o, self.data
        assert self.sim is not None
        cmd = [
            sys.executable, "-m", "feeder", "--url", self.sim.ws_url, "--workers", str(o.workers),
            "--instruments", ",".join(d.instruments), "--streams", o.streams, "--instance", d.instance,
            "--display", "off", "--log-level", "warning", "--config", str(self._feeder_config()),
        ]  # fmt: skip
        env = {**os.environ, "DERIBIT_CLIENT_ID": DEMO_CLIENT_ID, "DERIBIT_CLIENT_SECRET": DEMO_CLIENT_SECRET}
        self.feeder = self._spawn(cmd, env, "feeder.log")
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        paths = [Path(SHM_DIR) / f"feeder.{d.instance}.{ring}" for ring in d.rings]
        while not all(p.exists() for p in paths):
            self._check_feeder()
            if time.monotonic() > deadline:
                raise TimeoutError(f"the feeder created no rings within {STARTUP_TIMEOUT_S:g} s")
            time.sleep(0.05)

    def _spawn(self, cmd: list[str], env: dict, log_name: str) -> subprocess.Popen:
        log = open(self.o.out / log_name, "wb")  # noqa: SIM115 (closed in _cleanup)
        self.logs.append(log)
        return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def _start_consumers(self) -> None:
        o, d = self.o, self.data
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(SCRIPTS), os.environ.get("PYTHONPATH")])),
        }
        for i in range(o.consumers):
            log, summary = o.out / f"consumer{i}.obs", o.out / f"consumer{i}.json"
            log.unlink(missing_ok=True)
            summary.unlink(missing_ok=True)
            d.consumer_logs.append(log)
            d.consumer_summaries.append(summary)
            cmd = [
                sys.executable, "-m", "soak.consumer", "--instance", d.instance, "--rings", ",".join(d.rings),
                "--log", str(log), "--summary", str(summary),
            ]  # fmt: skip
            if i == 0 and d.trade_rings:  # the consumer that is never paused checks the trades
                d.trade_log = o.out / "consumer0.trades"
                d.trade_log.unlink(missing_ok=True)
                cmd += ["--trade-rings", ",".join(d.trade_rings), "--trade-log", str(d.trade_log)]
            self.consumers.append(self._spawn(cmd, env, f"consumer{i}.log"))
        if o.consumers >= 2 and "slow_consumer" in o.kinds:
            d.slow_consumer = o.consumers - 1

    def _wait_connected(self) -> None:
        d = self.data
        monitor = d.monitor = Monitor(d.instance, self.o.sample_s, time.monotonic())
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            self._check_feeder()
            workers = monitor.status().get("workers", [])
            if workers and all(w["state"] == "running" and w["connected"] for w in workers):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the feeder's workers were not all connected within {STARTUP_TIMEOUT_S:g} s"
                )
            time.sleep(0.1)
        monitor.t0 = time.monotonic()
        d.t0_ns = time.time_ns()
        d.loadavg.append(os.getloadavg()[0])
        monitor.sim = self.sim
        assert self.sim is not None and self.feeder is not None
        monitor.watch(self.sim.pid, "sim")
        monitor.watch(self.feeder.pid, "supervisor")
        for i, proc in enumerate(self.consumers):
            monitor.watch(proc.pid, f"consumer{i}")
        monitor.start()

    def _check_feeder(self) -> None:
        if self.feeder is not None and self.feeder.poll() is not None:
            raise RuntimeError(f"the feeder exited with code {self.feeder.returncode} (see feeder.log)")

    # --- faults on the clock -----------------------------------------------------------------------

    def _drive(self) -> None:
        o, d = self.o, self.data
        monitor = d.monitor
        assert monitor is not None and self.sim is not None
        capacity = o.book_capacity or 1 << 14
        slow_pid = self.consumers[d.slow_consumer].pid if d.slow_consumer is not None else None
        injector = Injector(
            self.sim, monitor.status, d.instruments, slow_pid,
            lap_seconds(capacity, o.rate, len(d.instruments)), o.hang_timeout, o.seed,
        )  # fmt: skip
        schedule = plan(o.kinds, o.faults, o.lead_s, max(o.lead_s, o.duration - o.settle_s), o.seed)
        queue: list[tuple[float, int, Any]] = [(p.t_s, i, p) for i, p in enumerate(schedule)]
        heapq.heapify(queue)
        count = len(queue)
        while monitor.now() < o.duration:
            self._check_feeder()
            while queue and queue[0][0] <= monitor.now():
                _, _, action = heapq.heappop(queue)
                if isinstance(action, Planned):
                    event, followups = injector.inject(action.kind)
                    event["t_s"] = round(monitor.now(), 3)
                    d.faults.append(event)
                    for delay, then in followups:
                        heapq.heappush(queue, (monitor.now() + delay, count, then))
                        count += 1
                else:
                    action()
            time.sleep(0.02)
        for _, _, action in queue:  # pending SIGCONTs: nobody stays stopped
            if not isinstance(action, Planned):
                action()

    # --- shutdown ----------------------------------------------------------------------------------

    def _stop_all(self) -> None:
        d = self.data
        assert d.monitor is not None and self.sim is not None and self.feeder is not None
        d.final_status = d.monitor.status()
        d.end_ns = time.time_ns()
        d.loadavg.append(os.getloadavg()[0])
        self.feeder.send_signal(signal.SIGTERM)
        try:
            d.feeder_exit = self.feeder.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            d.errors.append(f"the feeder did not stop within {STOP_TIMEOUT_S:g} s of SIGTERM")
        deadline = time.monotonic() + CONSUMER_EXIT_S
        for proc in self.consumers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
            if proc.poll() is None:
                proc.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(10)
        d.consumer_exits = [p.poll() for p in self.consumers]
        d.monitor.stop()
        d.sim_stats = self.sim.stats()

    def _cleanup(self) -> None:
        d = self.data
        if d.monitor is not None:
            d.monitor.stop()
        if self.sim is not None:
            self.sim.stop()
        procs = [p for p in (self.feeder, *self.consumers) if p is not None]
        d.leftover_processes = [f"pid {p.pid} ({' '.join(p.args[1:4])})" for p in procs if p.poll() is None]
        if d.monitor is not None:
            d.leftover_processes += d.monitor.leftovers()
        d.leftover_segments = sorted(p.name for p in Path(SHM_DIR).glob(f"feeder.{d.instance}.*"))
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
        if d.monitor is not None:
            d.monitor.kill_leftovers()
        for name in d.leftover_segments:
            (Path(SHM_DIR) / name).unlink(missing_ok=True)
        shutil.rmtree(run_dir(d.instance), ignore_errors=True)
        for log in self.logs:
            log.close()
