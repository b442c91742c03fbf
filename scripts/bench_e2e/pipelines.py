"""One trial: a simulator, a pipeline and a strategy process, started, measured and stopped.

Rules it keeps:
- Every trial starts from nothing: a fresh simulator (same seed, instruments and rate for both
  pipelines, so both get the same feed), a fresh pipeline, a fresh strategy process. All of them are
  stopped and reaped in `finally`, also when the trial fails; the feeder removes its rings on exit and
  anything a killed feeder left is cleaned.
- No sleeping in place of a condition: ready means "the strategy process has seen every channel",
  drained means "the strategy process received nothing for DRAIN_QUIET_S". The only sleeps are the
  measured spans themselves.
- Layout: the pipeline under test (the feeder's worker, pinned by its own `--cpus`, or cryptofeed's
  process) has a CPU to itself; the simulator and the strategy process get one each with 3+ CPUs and
  share the other on 2. The feeder's supervisor is left unpinned, as the feeder runs it.
- Each spawned process watches its parent and stops when it is gone, so an interrupted benchmark
  leaves nothing running (the feeder also gets a --duration well past the trial's end).
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import psutil

from bench_e2e import ceiling, consumers, cryptofeed_sim
from bench_e2e.analysis import Received, analyse
from feeder import FeederError, FeederHandle, clean_stale, list_rings, universe
from feeder.sim import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, SimConfig, SimServer

CTX = mp.get_context("spawn")
PIPELINES = ("feeder", "cryptofeed")
START_TIMEOUT_S = 90.0
POKE_EVERY_S = 0.5
DRAIN_QUIET_S = 0.5
DRAIN_MAX_S = 30.0
STOP_TIMEOUT_S = 20.0
STATUS_POLL_S = 0.5  # a status answer lists every ring: with 1000 rings it costs the supervisor real time
MB = 1 << 20


@dataclass(frozen=True)
class Layout:
    """Which CPU each role is pinned to (None: not pinned)."""

    sim: int | None
    pipeline: int | None
    strategy: int | None

    @classmethod
    def for_this_machine(cls) -> Layout:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) >= 3:
            return cls(cpus[0], cpus[1], cpus[2])
        if len(cpus) == 2:
            return cls(cpus[0], cpus[1], cpus[0])
        return cls(None, None, None)

    def describe(self) -> str:
        if self.pipeline is None:
            return "one CPU available: nothing pinned"
        pipeline = f"pipeline under test (feeder worker / cryptofeed) on CPU {self.pipeline}"
        if self.strategy == self.sim:
            return f"simulator and strategy process share CPU {self.sim}, {pipeline} alone"
        return f"simulator on CPU {self.sim}, {pipeline}, strategy process on CPU {self.strategy}"


@dataclass(frozen=True)
class Bench:
    """What every trial of one run shares."""

    layout: Layout
    instance: str  # the feeder's instance namespace (trials run one at a time, so they share it)
    feeder_config: str | None = None  # a TOML file given to the feeder with --config


@dataclass(frozen=True)
class TrialSpec:
    pipeline: str  # feeder | cryptofeed
    instruments: tuple[str, ...] | int  # names, or a count of the simulator's instruments
    rate: float  # book updates per second over all instruments
    warmup: float  # seconds at `rate` before the measured window
    seconds: float  # the measured window
    seed: int = 1
    chains: tuple[str, ...] = ()  # kinds the feeder serves in chain rings (book.BTC-options ...)

    @property
    def sent_window(self) -> int:
        """Notifications per channel the simulator must remember: all of the trial's, with room."""
        return int(self.rate * (self.warmup + self.seconds + DRAIN_MAX_S)) + 10_000


def run_trial(spec: TrialSpec, bench: Bench) -> dict:
    """Start everything, measure one window at `spec.rate`, stop everything; the trial's figures."""
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as workdir, contextlib.ExitStack() as stack:
        sim = stack.enter_context(SimServer(_sim_config(spec)))
        _pin(sim.pid, bench.layout.sim)
        names = sim.info()["active"]
        pipeline = _pipeline(spec.pipeline, bench)
        stack.callback(pipeline.stop)
        pipeline.start(sim, names, workdir, spec)
        _wait_ready(sim, pipeline, len(names))
        processes = {**pipeline.processes(), "simulator": psutil.Process(sim.pid)}
        sim.set_rate(spec.rate)
        time.sleep(spec.warmup)
        t0, cpu0 = time.time_ns(), _cpu_seconds(processes)
        time.sleep(spec.seconds)
        t1, cpu1 = time.time_ns(), _cpu_seconds(processes)
        memory = pipeline.memory()
        events = pipeline.events()
        sim.set_rate(0)
        drained = _drain(pipeline.shared)
        received = pipeline.collect(names)
        sent = [_sent_rows(sim, f"book.{name}.raw", spec) for name in names]
        stats = sim.stats()
    figures = analyse(
        sent,
        received,
        t0,
        t1,
        spec.rate,
        restarts=events.get("worker_restarts", 0),
        simulator_lagged=stats["lagged_updates"],
    )
    figures.update(
        pipeline=spec.pipeline,
        instruments=len(names),
        drained=drained,
        simulator={
            "lagged_updates": stats["lagged_updates"],
            "slow_consumer_resets": stats["counters"].get("slow_consumer_resets", 0),
        },
        cpu=_cpu_figures(cpu0, cpu1, figures["sent"], (t1 - t0) / 1e9, pipeline.roles()),
        memory=memory,
        events=events,
    )
    return figures


def _pipeline(name: str, bench: Bench) -> FeederPipeline | CryptofeedPipeline | ceiling.BarePipeline:
    if name == "feeder":
        return FeederPipeline(bench)
    if name == "cryptofeed":
        return CryptofeedPipeline(bench.layout)
    if name == ceiling.NAME:
        return ceiling.BarePipeline(bench.layout, CTX, (DEMO_CLIENT_ID, DEMO_CLIENT_SECRET))
    raise ValueError(f"unknown pipeline {name!r}")


def _sim_config(spec: TrialSpec) -> SimConfig:
    return SimConfig(
        instruments=spec.instruments,
        rate=0,
        seed=spec.seed,
        rate_limits=False,
        credentials={DEMO_CLIENT_ID: DEMO_CLIENT_SECRET},
        sent_window=spec.sent_window,
    )


def _pin(pid: int | None, cpu: int | None) -> None:
    if pid is not None and cpu is not None:
        os.sched_setaffinity(pid, {cpu})


def _wait_ready(sim: SimServer, pipeline: Any, channels: int) -> None:
    """Until the strategy process has had something from every channel (publishing a few changes
    while waiting, for a pipeline whose first snapshot can miss a ZMQ subscriber still connecting)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    next_poke = time.monotonic() + POKE_EVERY_S
    while pipeline.shared.channels_seen.value < channels:
        pipeline.check_alive()
        now = time.monotonic()
        if now > deadline:
            raise RuntimeError(
                f"{pipeline.name}: the strategy process saw {pipeline.shared.channels_seen.value} of "
                f"{channels} channels within {START_TIMEOUT_S:g} s{pipeline.log_tail()}"
            )
        if now >= next_poke:
            sim.publish(channels)
            next_poke = now + POKE_EVERY_S
        time.sleep(0.01)


def _drain(shared: consumers.Shared) -> bool:
    """Wait until the strategy process stops receiving; False if it was still busy after DRAIN_MAX_S."""
    deadline = time.monotonic() + DRAIN_MAX_S
    last, quiet_since = shared.updates.value, time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now_count = shared.updates.value
        if now_count != last:
            last, quiet_since = now_count, time.monotonic()
        elif time.monotonic() - quiet_since >= DRAIN_QUIET_S:
            return True
    return False


def _sent_rows(sim: SimServer, channel: str, spec: TrialSpec) -> np.ndarray:
    """[change_id, send_ns] of every notification the simulator sent on `channel`."""
    rows = sim.sent(channel)
    if len(rows) >= spec.sent_window:
        raise RuntimeError(f"the simulator's sent window for {channel} overflowed: raise sent_window")
    if not rows:
        return np.empty((0, 2), np.int64)
    return np.array(rows, np.int64)[:, [0, 2]]


def _cpu_seconds(processes: dict[str, psutil.Process]) -> dict[str, float]:
    out = {}
    for role, p in processes.items():
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            out[role] = t.user + t.system
    return out


def _cpu_figures(
    before: dict[str, float], after: dict[str, float], updates: int, seconds: float, roles: dict[str, str]
) -> dict:
    """CPU microseconds per update (None when nothing was sent) and share of a core, per process and
    per role (the pipeline's processes summed)."""
    used = {process: after[process] - before[process] for process in before if process in after}
    by_role: dict[str, float] = {}
    for process, seconds_used in used.items():
        role = roles.get(process, process)
        by_role[role] = by_role.get(role, 0.0) + seconds_used

    def per_update(values: dict[str, float]) -> dict[str, float | None]:
        return {k: round(v * 1e6 / updates, 2) if updates else None for k, v in values.items()}

    return {
        "us_per_update": per_update(by_role),
        "core_share": {role: round(s / seconds, 3) for role, s in by_role.items()},
        "by_process_us_per_update": per_update(used),
    }


def _memory(processes: dict[str, psutil.Process]) -> dict:
    out = {}
    for role, p in processes.items():
        with contextlib.suppress(psutil.Error):
            m = p.memory_full_info()
            out[role] = {"rss_mb": round(m.rss / MB, 1), "uss_mb": round(m.uss / MB, 1)}
    return out


def _child_alive(process: Any, what: str) -> None:
    if not process.is_alive():
        raise RuntimeError(f"{what} exited early (exit code {process.exitcode})")


def _stop_child(process: Any) -> None:
    """SIGTERM, then SIGKILL after STOP_TIMEOUT_S; reaped either way."""
    if process is None or process.pid is None:
        return
    if process.is_alive():
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
        process.join(STOP_TIMEOUT_S)
    if process.is_alive():
        process.kill()
    process.join(STOP_TIMEOUT_S)


# --- the two pipelines ------------------------------------------------------------------------------


class FeederPipeline:
    """`python -m feeder --url <simulator>` with one worker, and a RingReader strategy process."""

    name = "feeder"

    def __init__(self, bench: Bench):
        self.instance = bench.instance
        self.layout = bench.layout
        self.config = bench.feeder_config
        self.shared = consumers.Shared.make(CTX)
        self.proc: subprocess.Popen | None = None
        self.strategy: Any = None
        self.workers: list[int] = []
        self.log_path = ""
        self.out = ""

    def start(self, sim: SimServer, names: list[str], workdir: str, spec: TrialSpec) -> None:
        self.log_path = os.path.join(workdir, "feeder.log")
        self.out = os.path.join(workdir, "strategy.npz")
        cmd = [
            sys.executable, "-m", "feeder", "--url", sim.ws_url, "--instruments", ",".join(names),
            "--streams", "book", "--workers", "1", "--instance", self.instance, "--display", "off",
            "--log-level", "warning", "--duration", str(spec.warmup + spec.seconds + 10 * START_TIMEOUT_S),
        ]  # fmt: skip
        if self.layout.pipeline is not None:
            cmd += ["--cpus", str(self.layout.pipeline)]
        if spec.chains:
            cmd += ["--chains", ",".join(spec.chains)]
        if self.config is not None:
            cmd += ["--config", self.config]
        env = {**os.environ, "DERIBIT_CLIENT_ID": DEMO_CLIENT_ID, "DERIBIT_CLIENT_SECRET": DEMO_CLIENT_SECRET}
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.workers = self._wait_running()
        served = universe(self.instance)
        rings = sorted({served[name].rings["book"] for name in names})
        channel_of = {served[name].instrument_id: i for i, name in enumerate(names)}
        self.strategy = CTX.Process(
            target=consumers.ring_consumer,
            args=(rings, channel_of, self.instance, self.out, self.shared, self.layout.strategy),
            name="bench-e2e-ring-strategy",
            daemon=True,
        )
        self.strategy.start()

    def _wait_running(self) -> list[int]:
        """Worker pids, once the supervisor reports every worker running."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            self.check_alive()
            with contextlib.suppress(FeederError, OSError), FeederHandle(self.instance) as handle:
                workers = handle.status()["workers"]
                if workers and all(w["state"] == "running" for w in workers):
                    return [w["pid"] for w in workers]
            time.sleep(STATUS_POLL_S)
        raise RuntimeError(f"the feeder did not start within {START_TIMEOUT_S:g} s{self.log_tail()}")

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"the feeder exited with code {self.proc.returncode}{self.log_tail()}")
        if self.strategy is not None:
            _child_alive(self.strategy, "the ring strategy process")

    def log_tail(self) -> str:
        with contextlib.suppress(OSError), open(self.log_path, errors="replace") as f:
            return "; feeder log:\n" + "".join(f.readlines()[-15:])
        return ""

    def processes(self) -> dict[str, psutil.Process]:
        assert self.proc is not None and self.strategy is not None
        pids = {"supervisor": self.proc.pid, "strategy": self.strategy.pid}
        pids.update({f"worker{i}": pid for i, pid in enumerate(self.workers)})
        return _alive(pids)

    def roles(self) -> dict[str, str]:
        return {"supervisor": "pipeline", **{f"worker{i}": "pipeline" for i in range(len(self.workers))}}

    def memory(self) -> dict:
        processes = {k: v for k, v in self.processes().items() if k != "strategy"}
        out = _memory(processes)
        rings = list_rings(self.instance)
        out["rings"] = {
            "count": len(rings),
            "allocated_mb": round(sum(r.size_bytes for r in rings) / MB, 1),
            "resident_mb": round(sum(_resident(r.segment) for r in rings) / MB, 1),
        }
        return out

    def events(self) -> dict:
        """Worker restarts and gaps the supervisor counted so far, and the first errors it logged."""
        out: dict[str, Any] = {"log_errors": _log_lines(self.log_path, (" ERROR ", " CRITICAL "))}
        with contextlib.suppress(FeederError, OSError), FeederHandle(self.instance) as handle:
            status = handle.status()
            out["worker_restarts"] = sum(w.get("restarts", 0) for w in status["workers"])
            out["gaps"] = sum(r.get("gaps", 0) for r in status["rings"])
            return out
        out["status"] = "the supervisor did not answer"
        return out

    def collect(self, names: list[str]) -> Received:
        self.shared.stop.value = True
        self.strategy.join(STOP_TIMEOUT_S)
        _child_alive_or_done(self.strategy, "the ring strategy process")
        with np.load(self.out) as data:
            return Received(
                data["chan"],
                data["cid"],
                data["recv"],
                data["flag"],
                reader_lost=int(data["reader_lost"]),
                ts_recv=data["ts_recv"],
                ts_publish=data["ts_publish"],
            )

    def stop(self) -> None:
        self.shared.stop.value = True
        _stop_child(self.strategy)
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(STOP_TIMEOUT_S)
        for pid in self.workers:  # a supervisor that was SIGKILLed leaves its workers to exit on their own
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).wait(STOP_TIMEOUT_S)
        clean_stale(self.instance)


class CryptofeedPipeline:
    """cryptofeed's Deribit feed -> its ZMQ backend -> a pyzmq subscriber strategy process."""

    name = "cryptofeed"

    def __init__(self, layout: Layout):
        self.layout = layout
        self.shared = consumers.Shared.make(CTX)
        self.feed: Any = None
        self.strategy: Any = None
        self.workdir = ""
        self.out = ""

    def start(self, sim: SimServer, names: list[str], workdir: str, spec: TrialSpec) -> None:
        self.workdir = workdir
        self.out = os.path.join(workdir, "strategy.npz")
        self.strategy = CTX.Process(
            target=consumers.zmq_consumer,
            args=(self.out, self.shared, self.layout.strategy),
            name="bench-e2e-zmq-strategy",
            daemon=True,
        )
        self.strategy.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.shared.port.value:
            _child_alive(self.strategy, "the ZMQ strategy process")
            if time.monotonic() > deadline:
                raise RuntimeError("the ZMQ strategy process did not bind its socket")
            time.sleep(0.01)
        http_base = sim.http_url.removesuffix("/api/v2")
        self.feed = CTX.Process(
            target=cryptofeed_sim.run,
            args=(
                sim.ws_url,
                http_base,
                names,
                self.shared.port.value,
                workdir,
                self.layout.pipeline,
                os.getpid(),
            ),
            name="bench-e2e-cryptofeed",
            daemon=True,
        )
        self.feed.start()

    def check_alive(self) -> None:
        _child_alive(self.feed, f"cryptofeed{self.log_tail()}")
        _child_alive(self.strategy, "the ZMQ strategy process")

    def log_tail(self) -> str:
        with contextlib.suppress(OSError), open(os.path.join(self.workdir, "cryptofeed.log")) as f:
            return "; cryptofeed log:\n" + "".join(f.readlines()[-15:])
        return ""

    def processes(self) -> dict[str, psutil.Process]:
        return _alive({"cryptofeed": self.feed.pid, "strategy": self.strategy.pid})

    def roles(self) -> dict[str, str]:
        return {"cryptofeed": "pipeline"}

    def memory(self) -> dict:
        return _memory(_alive({"cryptofeed": self.feed.pid}))

    def events(self) -> dict:
        """The first warnings and errors cryptofeed logged (sequence breaks, reconnects, exceptions)."""
        path = os.path.join(self.workdir, "cryptofeed.log")
        return {"log_errors": _log_lines(path, (": WARNING :", ": ERROR :", ": CRITICAL :"))}

    def collect(self, names: list[str]) -> Received:
        self.shared.stop.value = True
        self.strategy.join(STOP_TIMEOUT_S)
        _child_alive_or_done(self.strategy, "the ZMQ strategy process")
        with open(os.path.join(self.workdir, "cryptofeed-symbols.json")) as f:
            instrument_of = json.load(f)
        with np.load(self.out) as data:
            order = np.array([names.index(instrument_of[s]) for s in data["channels"]], np.int32)
            chan = order[data["chan"]] if order.size else data["chan"]
            return Received(chan, data["cid"], data["recv"], data["flag"], reader_lost=0)

    def stop(self) -> None:
        self.shared.stop.value = True
        _stop_child(self.feed)
        _stop_child(self.strategy)


def _child_alive_or_done(process: Any, what: str) -> None:
    if process.is_alive():
        raise RuntimeError(f"{what} did not stop within {STOP_TIMEOUT_S:g} s")
    if process.exitcode != 0:
        raise RuntimeError(f"{what} failed (exit code {process.exitcode})")


def _log_lines(path: str, marks: tuple[str, ...], keep: int = 5) -> list[str]:
    """The first `keep` lines of a log holding any of `marks` (warnings, errors), shortened."""
    found: list[str] = []
    with contextlib.suppress(OSError), open(path, errors="replace") as f:
        for line in f:
            if any(mark in line for mark in marks):
                found.append(line.strip()[:240])
                if len(found) == keep:
                    break
    return found


def _alive(pids: dict[str, int]) -> dict[str, psutil.Process]:
    out = {}
    for role, pid in pids.items():
        with contextlib.suppress(psutil.Error):
            out[role] = psutil.Process(pid)
    return out


def _resident(path: str) -> int:
    try:
        return os.stat(path).st_blocks * 512
    except FileNotFoundError:
        return 0
