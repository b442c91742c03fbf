"""The supervisor: owns the rings, runs the workers, keeps them alive, routes requests to them.

It moves bytes and events; the decisions are elsewhere and pure (`core.health` scores and routes,
`core.restart` decides restarts, `exchanges.methods` says what may be retried). Rules it keeps:
- Every ring is created here before any worker starts and has exactly one writing worker; rings keep
  their names across worker restarts, so readers never re-attach.
- A worker that exits, or sends no heartbeat for `hang_timeout`, is SIGKILLed if needed and replaced
  (first restart at once, then with backoff); too many restarts in the window: it stays down, loudly,
  and the others keep running.
- Requests go to the healthiest worker that can serve them. Read-only requests fail over when a worker
  dies under them; orders are sent at most once and a lost answer is OutcomeUnknown with the label.
- Shutdown (SIGINT/SIGTERM, or `duration`): answer in-flight requests, stop the workers, remove the
  rings and run files (all but the instance lock file, see rundir.py, and the directory holding it).
  A second signal forces it: SIGKILL the workers, remove the rings, exit 130.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import multiprocessing
import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import psutil

from feeder import errors
from feeder.core.health import Candidate, ErrorWindow, HealthInputs, Router, score
from feeder.core.restart import RestartPolicy
from feeder.exchanges.deribit.costs import DeribitCosts
from feeder.exchanges.deribit.credentials import Credentials, load_credentials
from feeder.exchanges.methods import is_private, is_read_only
from feeder.ring import RingOwner, RingWriter, clean_stale, create_ring, list_rings
from feeder.ring.marking import mark_gap, needs_mark
from feeder.runtime.account import account_costs
from feeder.runtime.config import FeederConfig
from feeder.runtime.control import ControlServer
from feeder.runtime.handle import STATUS_METHOD
from feeder.runtime.listings import Listings
from feeder.runtime.plan import RingSpec, initial, layout_of
from feeder.runtime.resolve import resolve, sim_instruments
from feeder.runtime.rundir import RunDir
from feeder.runtime.sizing import check_free
from feeder.runtime.worker import EXIT_FATAL, WorkerSpec, worker_main

log = logging.getLogger("feeder.supervisor")

HB_STALE_S = 1.0  # no heartbeat for this long: do not route requests there (killed at hang_timeout)
EXIT_SEEN_S = 1.0  # from killing a hung worker to its requests failing (the exit is noticed, WorkerLost)
STOPPED_AFTER_S = 1.0  # a silent worker the kernel shows as stopped (SIGSTOP) is hung after this
START_GRACE_S = 30.0  # a starting worker imports and connects before its first heartbeat
STOP_GRACE_S = 5.0
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_FORCED = 0, 1, 2, 130


def answer_margin(hang_timeout: float) -> float:
    """Seconds beyond a request's own timeout within which the supervisor always answers it: a worker
    enforces the timeout itself; one that stops answering is killed after `hang_timeout` and its
    requests fail (OutcomeUnknown for orders) once the exit is seen. FeederHandle learns this margin
    in the handshake and waits that long plus transit, so it never gives up before the supervisor."""
    return hang_timeout + EXIT_SEEN_S


def _add_audits(before: dict[str, dict], now: dict[str, dict]) -> dict[str, dict]:
    """Audit figures per ring over a slot's processes (counters add up; the last pass is the latest)."""
    out = {ring: dict(figures) for ring, figures in before.items()}
    for ring, figures in now.items():
        total = out.setdefault(ring, {})
        for key, value in figures.items():
            total[key] = (
                max(total.get(key, 0), value) if key == "last_passed_ns" else total.get(key, 0) + value
            )
    return out


def _audit_status(figures: dict, now_ns: int) -> dict:
    last = figures.get("last_passed_ns", 0)
    return {
        "passed": figures.get("passed", 0),
        "failed": figures.get("failed", 0),
        "unverifiable": figures.get("unverifiable", 0),
        "last_passed_age_s": round((now_ns - last) / 1e9, 1) if last else None,
        "crossed": figures.get("crossed", 0),
    }


class WorkerLost(Exception):
    """The worker died while a request was in flight."""


@dataclass
class Slot:
    """One worker position: its rings and CPU stay; the process behind it may be replaced."""

    index: int
    rings: tuple[str, ...]
    cpu: int | None
    policy: RestartPolicy
    process: Any = None
    conn: Connection | None = None
    state: str = "starting"  # starting | running | restarting | failed | stopped
    started: float = 0.0
    last_hb: float = 0.0
    health: dict = field(default_factory=dict)
    restarts: int = 0
    served: int = 0  # requests this slot answered
    errors: ErrorWindow = field(default_factory=ErrorWindow)
    last_error_count: int = 0
    inflight: dict[int, asyncio.Future] = field(default_factory=dict)
    last_error: str | None = None
    rate: float = 0.0
    ps: psutil.Process | None = None
    killed: Any = None  # the process the watchdog already SIGKILLed
    audits_before: dict[str, dict] = field(default_factory=dict)  # ring -> audit figures of earlier processes
    _frames: tuple[float, int] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def score(self) -> int:
        h = self.health
        if self.state != "running" or not h or time.monotonic() - self.last_hb > HB_STALE_S:
            return 0
        return score(
            HealthInputs(
                connected=bool(h.get("connected")),
                pending_requests=int(h.get("pending", 0)) + len(self.inflight),
                latency_p99_ms=float(h.get("latency_p99_ms", 0.0)),
                recent_errors=self.errors.weight(time.monotonic()),
                pressure=str(h.get("pressure", "none")),
                heartbeat_misses=int(h.get("heartbeat_misses", 0)),
                data_age_s=float(h.get("data_age_s", 0.0)),
            )
        )


class Supervisor:
    def __init__(self, config: FeederConfig):
        self.config = config
        self.rundir = RunDir(config.instance)
        self.instance = self.rundir.instance
        self.limits_dir = self.rundir.path / "limits"  # the shared rate-limit buckets of this run
        self.ctx = multiprocessing.get_context("spawn")
        self.router = Router()
        self.slots: list[Slot] = []
        self.owners: dict[str, RingOwner] = {}
        self.sim: Any = None
        self.url = config.ws_url
        self.credentials: Credentials | None = None
        self.control: ControlServer | None = None
        self.metrics_server: Any = None
        self.started = time.monotonic()
        self._ids = itertools.count(1)
        self._stop = asyncio.Event()
        self._signals = 0
        self._ring_seen: dict[str, tuple[float, int, float]] = {}  # ring -> (when, write_seq, rate)
        self._spare: tuple[Any, Connection] | None = None  # a started worker process waiting for its spec
        self.costs = DeribitCosts(config.tier)
        self.costs_note = f"configured tier {config.tier}"
        self.exit_code = EXIT_OK
        self.listings: Listings | None = None

    # --- lifecycle ---------------------------------------------------------------------------------

    async def run(self) -> int:
        """Start everything, run until a signal or `duration`, shut down; returns the exit code."""
        self.rundir.acquire()
        try:
            await self._start()
            await self._serve()
        finally:
            await self._shutdown()
        return self.exit_code

    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)
        for info in clean_stale(self.instance):
            log.info("removed stale ring %s left by a previous run", info.name)
        if self.config.sim:
            await self._start_sim()
        else:
            self.credentials = load_credentials(self.config.credentials_file)
        self.costs, self.costs_note = await account_costs(self.url, self.credentials, self.config.tier)
        await self._plan()
        # buckets of an earlier run may hold other limits (another tier, or the account's): start afresh
        shutil.rmtree(self.limits_dir, ignore_errors=True)
        self.limits_dir.mkdir(mode=0o700)
        for slot in self.slots:
            self._spawn(slot)
        self.control = ControlServer(
            self.rundir.socket_path,
            self.rundir.key_path.read_text(),
            self.dispatch,
            hello={"answer_margin_s": answer_margin(self.config.hang_timeout)},
        )
        await self.control.start()
        if self.config.metrics_port is not None:
            from feeder.runtime.metrics import MetricsServer

            self.metrics_server = MetricsServer(self.status)
            await self.metrics_server.start(self.config.metrics_port)
            log.info("Prometheus metrics at http://127.0.0.1:%d/metrics", self.metrics_server.port)
        log.info(
            "feeder instance %r: %d workers, %d rings, exchange %s",
            self.instance,
            len(self.slots),
            len(self.owners),
            self.url,
        )

    async def _start_sim(self) -> None:
        from feeder.sim import SimServer
        from feeder.sim.config import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

        instruments = sim_instruments(self.config)
        self.sim = SimServer(
            **({"instruments": list(instruments)} if instruments else {}),
            rate=self.config.sim_rate,
            credentials={DEMO_CLIENT_ID: DEMO_CLIENT_SECRET},
        )
        await asyncio.get_running_loop().run_in_executor(None, self.sim.start)
        self.url = self.sim.ws_url
        self.credentials = Credentials(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
        log.info("embedded simulator at %s (demo credentials %s)", self.url, DEMO_CLIENT_ID)

    async def _plan(self) -> None:
        """Resolve the selection with the exchange, plan rings and workers, check /dev/shm, create the
        rings and the inventory (`Listings` keeps the universe up to date from then on)."""
        c = self.config
        resolved = await resolve(c, self.url)
        plan = initial(
            layout_of(c, authenticated=self.credentials is not None), c.workers, resolved.instruments
        )
        check_free(plan.size_bytes)
        if c.workers > plan.workers:
            log.warning(
                "%d workers for %d units of instruments: running %d", c.workers, plan.workers, plan.workers
            )
        self.listings = Listings(
            resolved, plan, self.instance, c.removal_grace,
            create_ring=self._create_ring, mark_closed=lambda ring: self.owners[ring].mark_closed(),
            remove_ring=lambda ring: self.owners.pop(ring).close(), send=lambda i, m: self._tell(self.slots[i], m),
            rpc=lambda method, params: self.dispatch(method, params, 10.0), workers_changed=self._rings_moved,
        )  # fmt: skip
        self.listings.start()
        cpus = list(c.cpus) if c.cpus else sorted(os.sched_getaffinity(0))
        if plan.workers > len(cpus):
            log.warning("%d workers share %d CPUs: expect contention", plan.workers, len(cpus))
        if c.busy_poll and plan.workers >= len(cpus):
            log.warning("busy_poll with %d workers on %d CPUs: they take every core", plan.workers, len(cpus))
        for index in range(plan.workers):
            policy = RestartPolicy(max_restarts=c.max_restarts, window_s=c.restart_window)
            self.slots.append(Slot(index, tuple(plan.rings_of(index)), cpus[index % len(cpus)], policy))

    def _create_ring(self, spec: RingSpec) -> None:
        self.owners[spec.name] = create_ring(
            spec.name, spec.record_type, spec.capacity, instance=self.instance
        )

    def _rings_moved(self) -> None:
        """Listings or ends changed what each worker writes."""
        for slot in self.slots:
            slot.rings = tuple(self.listings.plan.rings_of(slot.index))

    def _spec(self, slot: Slot) -> WorkerSpec:
        c = self.config
        return WorkerSpec(
            index=slot.index,
            instance=self.instance,
            url=self.url,
            interval=c.interval,
            heartbeat_interval=c.heartbeat_interval,
            cancel_on_disconnect=c.cancel_on_disconnect,
            credentials=self.credentials,
            limits_dir=str(self.limits_dir),
            record_dir=c.record,
            log_level=c.log_level,
            busy_poll=c.busy_poll,
            audit_interval=c.audit_interval,
            crossed=c.crossed,
            costs=self.costs,
            **self.listings.spec(slot.index),
        )

    def _new_process(self) -> tuple[Any, Connection]:
        parent, child = self.ctx.Pipe()
        process = self.ctx.Process(target=worker_main, args=(child,), name="feeder-worker", daemon=True)
        process.start()
        child.close()
        return process, parent

    def _take_spare(self) -> tuple[Any, Connection]:
        """The ready spare process if there is a live one, else a fresh one; a new spare is started after."""
        spare, self._spare = self._spare, None
        if not self._stop.is_set():
            asyncio.get_running_loop().call_soon(self._make_spare)
        if spare is not None and spare[0].is_alive():
            return spare
        return self._new_process()

    def _make_spare(self) -> None:
        if self._spare is None and not self._stop.is_set():
            self._spare = self._new_process()

    def _drop_spare(self) -> None:
        spare, self._spare = self._spare, None
        if spare is not None:
            spare[1].close()  # the spare exits on EOF
            spare[0].join(timeout=5)

    def _spawn(self, slot: Slot) -> None:
        process, parent = self._take_spare()
        parent.send(self._spec(slot))
        slot.process, slot.conn = process, parent
        slot.state, slot.started, slot.health, slot._frames = "starting", time.monotonic(), {}, None
        with contextlib.suppress(psutil.Error, OSError):
            slot.ps = psutil.Process(process.pid)
            if slot.cpu is not None:
                slot.ps.cpu_affinity([slot.cpu])
        loop = asyncio.get_running_loop()
        loop.add_reader(parent.fileno(), self._on_worker_message, slot)
        loop.add_reader(process.sentinel, self._on_worker_exit, slot)

    async def _serve(self) -> None:
        watchdog = asyncio.get_running_loop().create_task(self._watchdog())
        display = None
        if self.config.display != "off":
            from feeder.runtime.display import run_display

            display = asyncio.get_running_loop().create_task(run_display(self.status, self.config.display))
        try:
            if self.config.duration is None:
                await self._stop.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.config.duration)
        finally:
            watchdog.cancel()
            if display is not None:
                display.cancel()

    def _on_signal(self, sig: int) -> None:
        self._signals += 1
        if self._signals == 1:
            log.info("%s: shutting down (send it again to force)", signal.Signals(sig).name)
            self._stop.set()
        else:
            log.warning("second signal: forcing exit")
            self._force_exit()

    def _force_exit(self) -> None:
        if self._spare is not None:
            with contextlib.suppress(OSError):
                os.kill(self._spare[0].pid, signal.SIGKILL)
        for slot in self.slots:
            if slot.process is not None and slot.process.is_alive():
                with contextlib.suppress(OSError):
                    os.kill(slot.process.pid, signal.SIGKILL)
        for owner in self.owners.values():
            owner.close()
        if self.listings is not None:
            self.listings.inventory.close()
        self.rundir.release()
        os._exit(EXIT_FORCED)  # the simulator exits by itself when its lifeline pipe closes

    async def _shutdown(self) -> None:
        if self.config.display != "off" and self.slots:
            from feeder.runtime.display import render

            print("\n".join(["final status:", *render(self.status())]), flush=True)
        if self.control is not None:
            await self.control.close()
        if self.metrics_server is not None:
            await self.metrics_server.close()
        self._drop_spare()
        for slot in self.slots:
            slot.state = "stopped"
            self._tell(slot, {"type": "stop"})
        deadline = time.monotonic() + STOP_GRACE_S
        for slot in self.slots:
            await self._reap(slot, deadline)
        for owner in self.owners.values():
            owner.close()
        if self.listings is not None:
            self.listings.close()
        shutil.rmtree(self.limits_dir, ignore_errors=True)
        if self.sim is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.sim.stop)
        self.rundir.release()
        log.info("feeder instance %r stopped", self.instance)

    async def _reap(self, slot: Slot, deadline: float) -> None:
        process = slot.process
        if process is None:
            return
        while process.is_alive() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if process.is_alive():
            log.warning("worker %d did not stop in time: killing it", slot.index)
            with contextlib.suppress(OSError):
                os.kill(process.pid, signal.SIGKILL)
        process.join(timeout=5)
        self._detach(slot)

    def _detach(self, slot: Slot) -> None:
        loop = asyncio.get_running_loop()
        if slot.conn is not None:
            with contextlib.suppress(Exception):
                loop.remove_reader(slot.conn.fileno())
            slot.conn.close()
            slot.conn = None
        if slot.process is not None:
            with contextlib.suppress(Exception):
                loop.remove_reader(slot.process.sentinel)

    # --- workers -----------------------------------------------------------------------------------

    def _tell(self, slot: Slot, message: dict) -> bool:
        if slot.conn is None:
            return False
        try:
            slot.conn.send(message)
            return True
        except (OSError, ValueError):
            return False

    def _on_worker_message(self, slot: Slot) -> bool:
        """Handle one message from the worker's pipe; False at end of file."""
        try:
            message = slot.conn.recv()
        except (EOFError, OSError):
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(slot.conn.fileno())
            return False
        kind = message.get("type")
        if kind == "hb":
            self._on_heartbeat(slot, message["health"])
        elif kind == "rpc":
            future = slot.inflight.pop(message["id"], None)
            if future is not None and not future.done():
                future.set_result(message)
        elif kind == "ready":
            slot.state = "running"
            log.info("worker %d (pid %s) running: %s", slot.index, slot.pid, ", ".join(slot.rings))
        elif kind == "fatal":
            slot.last_error = message["error"].get("message")
            log.error("worker %d cannot start: %s", slot.index, slot.last_error)
        elif kind == "event":
            self._on_worker_event(slot, message)
        elif kind == "instrument_state" and self.listings is not None and not self._stop.is_set():
            self.listings.on_states(message["events"])
        elif kind == "removed" and self.listings is not None:
            self.listings.on_removed(message["instruments"])
        return True

    def _on_heartbeat(self, slot: Slot, health: dict) -> None:
        now = time.monotonic()
        slot.last_hb, slot.health = now, health
        errors_total = int(health.get("errors", 0))
        for _ in range(max(0, errors_total - slot.last_error_count)):
            slot.errors.record(now)
        slot.last_error_count = errors_total
        frames = int(health.get("frames_in", 0))
        if slot._frames is not None and now > slot._frames[0]:
            then, before = slot._frames
            if now - then >= 1.0:
                slot.rate = (frames - before) / (now - then)
                slot._frames = (now, frames)
        else:
            slot._frames = (now, frames)

    def _on_worker_event(self, slot: Slot, message: dict) -> None:
        name, data = message.get("name"), message.get("data") or {}
        if self._stop.is_set():
            return
        if name == "connected" and self.listings is not None:
            self.listings.on_connected(slot.index)
        elif name in ("disconnected", "gave_up", "heartbeat_dead"):
            slot.last_error = str(data.get("reason") or name)
            log.warning("worker %d: %s %s", slot.index, name, data.get("reason", ""))
        elif name == "subscription_refused":
            log.error("worker %d: exchange refused %s", slot.index, data.get("refused"))

    def _on_worker_exit(self, slot: Slot) -> None:
        process = slot.process
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(process.sentinel)
        if slot.state == "stopped":
            return
        process.join(timeout=1)
        code = process.exitcode
        reason = (
            f"exit code {code}" if code is None or code >= 0 else f"killed by {signal.Signals(-code).name}"
        )
        if code == EXIT_FATAL and slot.last_error:
            reason += f" ({slot.last_error})"
        log.error("worker %d (pid %s) died: %s", slot.index, process.pid, reason)
        slot.last_error = reason
        for future in slot.inflight.values():
            if not future.done():
                future.set_exception(WorkerLost(reason))
        slot.inflight.clear()
        self._detach(slot)
        slot.audits_before = _add_audits(slot.audits_before, slot.health.get("audits", {}))
        slot.health = {}
        self._mark_gap(slot)
        decision = slot.policy.on_failure(time.monotonic(), slot.started)
        if decision.give_up:
            slot.state = "failed"
            if all(s.state == "failed" for s in self.slots):
                log.critical("every worker failed: stopping")
                self.exit_code = EXIT_FAILED
                self._stop.set()
            log.critical(
                "worker %d restarted %d times in %g s: giving up on it; rings %s get no data; "
                "the other workers keep running",
                slot.index,
                slot.policy.max_restarts,
                slot.policy.window_s,
                ", ".join(slot.rings),
            )
            return
        slot.state = "restarting"
        slot.restarts += 1
        asyncio.get_running_loop().call_later(decision.delay_s, self._respawn, slot)

    def _mark_gap(self, slot: Slot) -> None:
        """Tell readers at once that the dead worker's rings are stale (`feeder.ring.marking`): book
        rings get a GAP copy of their last record, event rings a MARKER|GAP record that carries no event."""
        for ring in slot.rings:
            record_type = self.owners[ring].record_type
            try:
                if needs_mark(ring, record_type, self.instance):
                    with RingWriter.attach(ring, record_type, instance=self.instance) as writer:
                        mark_gap(writer)
            except Exception as exc:  # best effort: it must never stand in the way of the restart
                log.error("could not flag ring %s as GAP after worker %d died: %r", ring, slot.index, exc)

    def _respawn(self, slot: Slot) -> None:
        if slot.state == "restarting" and not self._stop.is_set():
            self._spawn(slot)

    async def _watchdog(self) -> None:
        """Kill workers whose heartbeat stopped (hung, or SIGSTOPped); their exit triggers the restart."""
        while True:
            await asyncio.sleep(0.05)
            for slot in self.slots:
                if slot.state in ("starting", "running") and slot.process is not None:
                    self._check_alive(slot)

    def _check_alive(self, slot: Slot) -> None:
        # Heartbeats waiting in the pipe count: a supervisor that ran late must not blame the worker.
        with contextlib.suppress(OSError, EOFError, ValueError):
            while slot.conn is not None and slot.conn.poll() and self._on_worker_message(slot):
                pass
        now = time.monotonic()
        if slot.last_hb < slot.started:
            silent, limit = now - slot.started, START_GRACE_S
        else:
            silent, limit = now - slot.last_hb, self.config.hang_timeout
        if silent > STOPPED_AFTER_S and limit > STOPPED_AFTER_S and self._stopped(slot):
            limit = STOPPED_AFTER_S  # SIGSTOPped: no need to wait out a timeout meant for slow machines
        if silent > limit and slot.process.is_alive() and slot.killed is not slot.process:
            log.error("worker %d (pid %s) silent for %.1f s: killing it", slot.index, slot.pid, silent)
            slot.last_error = f"hung: no heartbeat for {silent:.1f} s"
            # the kernel may take a while to tear down a big process: once is enough
            slot.killed = slot.process
            with contextlib.suppress(OSError):
                os.kill(slot.process.pid, signal.SIGKILL)

    @staticmethod
    def _stopped(slot: Slot) -> bool:
        try:
            return slot.ps is not None and slot.ps.status() == psutil.STATUS_STOPPED
        except psutil.Error:
            return False

    # --- requests ----------------------------------------------------------------------------------

    async def dispatch(self, method: str, params: dict, timeout: float) -> Any:
        """Answer a FeederHandle request: supervisor methods here, exchange methods through a worker."""
        if method == STATUS_METHOD:
            return self.status()
        private, read_only = is_private(method), is_read_only(method)
        if private and self.credentials is None:
            raise errors.NotAuthenticated(
                f"{method} needs Deribit credentials and this feeder has none: set DERIBIT_CLIENT_ID and "
                f"DERIBIT_CLIENT_SECRET (or a credentials file) before starting it, or use --sim"
            )
        tried: set[int] = set()
        while True:
            slot = self._choose(method, private, frozenset(tried))
            tried.add(slot.index)
            try:
                return await self._forward(slot, method, params, timeout)
            except WorkerLost as exc:
                if read_only:
                    log.info("%s: worker %d died, failing over", method, slot.index)
                    continue
                raise errors.OutcomeUnknown(
                    method, params.get("label"), f"worker {slot.index} died: {exc}"
                ) from None

    def _choose(self, method: str, private: bool, exclude: frozenset[int]) -> Slot:
        candidates = [
            Candidate(s.index, s.score(), bool(s.health.get("authenticated")))
            for s in self.slots
            if s.state == "running"
        ]
        index = self.router.choose(candidates, private, exclude)
        if index is None:
            states = ", ".join(f"worker {s.index}: {s.state}, score {s.score()}" for s in self.slots)
            raise errors.NoHealthyWorker(f"no worker can serve {method} now ({states or 'no workers'})")
        return self.slots[index]

    async def _forward(self, slot: Slot, method: str, params: dict, timeout: float) -> Any:
        rid = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        slot.inflight[rid] = future
        if not self._tell(
            slot, {"type": "rpc", "id": rid, "method": method, "params": params, "timeout": timeout}
        ):
            slot.inflight.pop(rid, None)
            raise WorkerLost("its pipe is closed")
        try:
            # the worker enforces `timeout` itself; the margin only covers a worker that stopped answering
            reply = await asyncio.wait_for(future, timeout + answer_margin(self.config.hang_timeout))
        except TimeoutError:
            slot.inflight.pop(rid, None)
            raise WorkerLost("no answer from the worker") from None
        slot.served += 1
        if "error" in reply:
            from feeder.runtime.wire import error_from_wire

            error = error_from_wire(reply["error"])
            if isinstance(error, errors.NetworkError | errors.OutcomeUnknown):
                slot.errors.record(time.monotonic())
            raise error
        return reply.get("result")

    # --- status ------------------------------------------------------------------------------------

    def status(self) -> dict:
        """Workers, scores and rings, for FeederHandle.status(), `feeder status` and the live view."""
        return {
            "instance": self.instance,
            "pid": os.getpid(),
            "uptime_s": round(time.monotonic() - self.started, 1),
            "url": self.url,
            "sim": self.sim is not None,
            "metrics_url": None
            if self.metrics_server is None
            else f"http://127.0.0.1:{self.metrics_server.port}/metrics",
            "workers": [self._worker_status(s) for s in self.slots],
            "rings": self._ring_status(),
            "rate_limits": {**self.costs.figures(), "why": self.costs_note},
            "universe": self.listings.status() if self.listings is not None else None,
            "audit_interval_s": self.config.audit_interval,
        }

    def _ring_status(self) -> list[dict]:
        now = time.monotonic()
        gaps = {ring: n for s in self.slots for ring, n in s.health.get("ring_gaps", {}).items()}
        audits = {
            ring: figures
            for s in self.slots
            for ring, figures in _add_audits(s.audits_before, s.health.get("audits", {})).items()
        }
        now_ns = time.time_ns()
        out = []
        for info in list_rings(self.instance):
            d = info.to_dict()
            seen = self._ring_seen.get(info.name)
            if seen is None:  # first look: the average since the ring was created
                rate = info.write_seq / max(1e-3, (time.time_ns() - info.created_ns) / 1e9)
                self._ring_seen[info.name] = (now, info.write_seq, rate)
            elif now - seen[0] >= 0.5:
                rate = (info.write_seq - seen[1]) / (now - seen[0])
                self._ring_seen[info.name] = (now, info.write_seq, rate)
            else:
                rate = seen[2]
            d["rate"] = rate
            d["gaps"] = gaps.get(info.name, 0)
            if info.name in audits:
                d["audits"] = _audit_status(audits[info.name], now_ns)
            out.append(d)
        return out

    def _worker_status(self, s: Slot) -> dict:
        h = s.health
        cpu_percent = None
        if s.ps is not None:
            with contextlib.suppress(psutil.Error):
                cpu_percent = s.ps.cpu_percent(None)
        return {
            "index": s.index,
            "pid": s.pid,
            "cpu": s.cpu,
            "cpu_percent": cpu_percent,
            "state": s.state,
            "connected": bool(h.get("connected")),
            "authenticated": bool(h.get("authenticated")),
            "rings": list(s.rings),
            "msgs_per_s": round(s.rate, 1),
            "latency_p50_ms": h.get("latency_p50_ms"),
            "latency_p99_ms": h.get("latency_p99_ms"),
            "score": s.score(),
            "restarts": s.restarts,
            "served": s.served,
            "gaps": h.get("gaps", 0),
            "reconnects": h.get("reconnects", 0),
            "last_error": s.last_error,
        }
