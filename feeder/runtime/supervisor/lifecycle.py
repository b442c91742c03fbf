"""The supervisor's life: start everything in order, run until told to stop, stop everything in order.

Rules it keeps:
- Start: lock the instance, start the simulator (`--sim`) or load credentials, learn the account's
  rate limits, resolve the selection with the exchange and plan its rings (refusing at once when
  /dev/shm cannot hold them), create every ring and the inventory, then spawn the workers, then open
  the control socket (and metrics). From then on `Listings` keeps the universe: listings and ends.
- Run until SIGINT/SIGTERM or `duration`; every worker given up on ends the run with exit code 1.
- Stop (either way): answer in-flight requests, stop the workers (their final GAP records tell readers
  the books are no longer live), remove the rings and run files (all but the instance lock file, see
  rundir.py, and the directory holding it). A second signal forces it: SIGKILL the workers, remove the
  rings, exit 130.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import time
from typing import Any

from feeder.core.restart import RestartPolicy
from feeder.exchanges.deribit.costs import DeribitCosts
from feeder.exchanges.deribit.credentials import Credentials, load_credentials
from feeder.ring import clean_stale
from feeder.runtime.account import account_costs
from feeder.runtime.config import FeederConfig
from feeder.runtime.control import ControlServer
from feeder.runtime.handle import BOOK_METHOD, STATUS_METHOD
from feeder.runtime.listings import Listings
from feeder.runtime.plan import RingSpec, initial, layout_of
from feeder.runtime.resolve import resolve, sim_instruments
from feeder.runtime.rundir import RunDir
from feeder.runtime.sizing import check_free
from feeder.runtime.supervisor.pool import WorkerPool
from feeder.runtime.supervisor.requests import Requests
from feeder.runtime.supervisor.rings import RingRegistry
from feeder.runtime.supervisor.slots import Slot
from feeder.runtime.supervisor.status import StatusBoard
from feeder.runtime.supervisor.watchdog import watch
from feeder.runtime.worker import WorkerSpec

log = logging.getLogger("feeder.supervisor")

STOP_GRACE_S = 5.0
EXIT_OK, EXIT_FAILED, EXIT_FORCED = 0, 1, 130


class Supervisor:
    def __init__(self, config: FeederConfig):
        self.config = config
        self.rundir = RunDir(config.instance)
        self.instance = self.rundir.instance
        self.limits_dir = self.rundir.path / "limits"  # the shared rate-limit buckets of this run
        self.rings = RingRegistry(self.instance)
        self._stop = asyncio.Event()
        self.pool = WorkerPool(self._spec, self.rings, self._stop, self._all_failed, self._on_universe)
        self.requests: Requests | None = None
        self.board = StatusBoard(self.instance)
        self.sim: Any = None
        self.url = config.ws_url
        self.credentials: Credentials | None = None
        self.control: ControlServer | None = None
        self.metrics_server: Any = None
        self.started = time.monotonic()
        self._signals = 0
        self.costs = DeribitCosts(config.tier)
        self.costs_note = f"configured tier {config.tier}"
        self.exit_code = EXIT_OK
        self.listings: Listings | None = None

    async def run(self) -> int:
        """Start everything, run until a signal or `duration`, shut down; returns the exit code."""
        self.rundir.acquire()
        try:
            await self._start()
            await self._serve()
        finally:
            await self._shutdown()
        return self.exit_code

    # --- start -------------------------------------------------------------------------------------

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
        for slot in self.pool.slots:
            self.pool.spawn(slot)
        self.requests = Requests(
            self.pool, self.config.hang_timeout, self.credentials is not None, book_ring=self._book_ring
        )
        self.control = ControlServer(
            self.rundir.socket_path,
            self.rundir.key_path.read_text(),
            self.dispatch,
            hello={"answer_margin_s": self.requests.margin},
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
            len(self.pool.slots),
            len(self.rings),
            self.url,
        )

    async def _start_sim(self) -> None:
        from feeder.sim import SimServer
        from feeder.sim.config import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

        instruments = sim_instruments(self.config)
        chosen: dict[str, Any] = {"instruments": list(instruments)} if instruments else {}
        self.sim = SimServer(
            **chosen,
            rate=self.config.sim_rate,
            credentials={DEMO_CLIENT_ID: DEMO_CLIENT_SECRET},
        )
        await asyncio.get_running_loop().run_in_executor(None, self.sim.start)
        self.url = self.sim.ws_url
        self.credentials = Credentials(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
        log.info("embedded simulator at %s (demo credentials %s)", self.url, DEMO_CLIENT_ID)

    async def _plan(self) -> None:
        """Resolve the selection with the exchange, plan rings and workers (`plan.py`, placed by
        `core.placement`), check /dev/shm, create every ring and the inventory; then the slots."""
        c = self.config
        resolved = await resolve(c, self.url)
        cpus = list(c.cpus) if c.cpus else sorted(os.sched_getaffinity(0))
        layout = layout_of(c, authenticated=self.credentials is not None)
        plan, placement = initial(layout, c.workers, resolved.instruments, cpus, c.busy_poll)
        check_free(plan.size_bytes)
        for warning in placement.warnings:
            log.warning("%s", warning)
        self.listings = Listings(
            resolved, plan, self.instance, c.removal_grace,
            create_ring=self._create_ring, mark_closed=self.rings.mark_closed, remove_ring=self.rings.remove,
            send=lambda i, m: self.pool.tell(self.pool.slots[i], m),
            rpc=lambda method, params: self.dispatch(method, params, 10.0), workers_changed=self._rings_moved,
        )  # fmt: skip
        self.listings.start()
        for index, cpu in enumerate(placement.cpus):
            policy = RestartPolicy(max_restarts=c.max_restarts, window_s=c.restart_window)
            self.pool.slots.append(Slot(index, tuple(plan.rings_of(index)), cpu, policy))

    def _create_ring(self, spec: RingSpec) -> None:
        self.rings.create(spec.name, spec.record_type, spec.capacity)

    def _rings_moved(self) -> None:
        """Listings or ends changed what each worker writes."""
        assert self.listings is not None
        for slot in self.pool.slots:
            slot.rings = tuple(self.listings.plan.rings_of(slot.index))

    def _on_universe(self, slot: Slot, message: dict[str, Any]) -> None:
        """What workers say about the universe: listings and ends, removals done, a reconnect."""
        if self.listings is None or self._stop.is_set():
            return
        kind = message["type"]
        if kind == "instrument_state":
            self.listings.on_states(message["events"])
        elif kind == "removed":
            self.listings.on_removed(message["instruments"])
        elif kind == "connected":
            self.listings.on_connected(slot.index)

    def _spec(self, slot: Slot) -> WorkerSpec:
        c = self.config
        assert self.listings is not None  # made before the first worker starts
        return WorkerSpec(
            index=slot.index,
            instance=self.instance,
            url=self.url,
            interval=c.interval,
            heartbeat_interval=c.heartbeat_interval,
            liveness_interval=c.liveness_interval,
            liveness_timeout=c.liveness_timeout,
            cancel_on_disconnect=c.cancel_on_disconnect,
            credentials=self.credentials,
            limits_dir=str(self.limits_dir),
            record_dir=c.record,
            log_level=c.log_level,
            busy_poll=c.busy_poll,
            redundancy=c.redundancy,
            audit_interval=c.audit_interval,
            crossed=c.crossed,
            depth=c.depth,
            costs=self.costs,
            **self.listings.spec(slot.index),
        )

    # --- run ---------------------------------------------------------------------------------------

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(watch(self.pool, self.config.hang_timeout))]
        if self.config.display != "off":
            from feeder.runtime.display import run_display

            tasks.append(loop.create_task(run_display(self.status, self.config.display)))
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.config.duration)
            self._stop.set()  # `duration` reached: from here on the feeder is stopping, as after a signal
        finally:
            for task in tasks:
                task.cancel()

    def _on_signal(self, sig: int) -> None:
        self._signals += 1
        if self._signals == 1:
            log.info("%s: shutting down (send it again to force)", signal.Signals(sig).name)
            self._stop.set()
        else:
            log.warning("second signal: forcing exit")
            self._force_exit()

    def _all_failed(self) -> None:
        self.exit_code = EXIT_FAILED
        self._stop.set()

    def _book_ring(self, name: str) -> tuple[str, str | None]:
        """The instrument a name or alias stands for, and the ring its book goes to (None: not served)."""
        assert self.listings is not None  # planned before the control socket opens
        plan = self.listings.plan
        instrument = plan.layout.channels.instrument(name)
        served = plan.served.get(instrument)
        return instrument, None if served is None else served.rings.get("book")

    async def dispatch(self, method: str, params: dict[str, Any], timeout: float) -> Any:
        """Answer a FeederHandle request: supervisor methods here, exchange methods through a worker."""
        if method == STATUS_METHOD:
            return self.status()
        assert self.requests is not None  # the control socket opens after it is made
        if method == BOOK_METHOD:
            return await self.requests.book(params, timeout)
        return await self.requests.send(method, params, timeout)

    # --- stop --------------------------------------------------------------------------------------

    def _force_exit(self) -> None:
        self.pool.kill_all()
        self.rings.close_all()
        if self.listings is not None:
            self.listings.inventory.close()
        self.rundir.release()
        os._exit(EXIT_FORCED)  # the simulator exits by itself when its lifeline pipe closes

    async def _shutdown(self) -> None:
        self._stop.set()
        if self.config.display != "off" and self.pool.slots:
            from feeder.runtime.display import render

            print("\n".join(["final status:", *render(self.status())]), flush=True)
        if self.control is not None:
            await self.control.close()
        if self.metrics_server is not None:
            await self.metrics_server.close()
        await self.pool.stop(STOP_GRACE_S)
        self.rings.close_all()
        if self.listings is not None:
            self.listings.close()
        shutil.rmtree(self.limits_dir, ignore_errors=True)
        if self.sim is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.sim.stop)
        self.rundir.release()
        log.info("feeder instance %r stopped", self.instance)

    # --- status ------------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Workers, scores, rings and channels, for FeederHandle.status(), `feeder status` and the live
        view."""
        channels = self.board.channels(self.pool.slots)
        return {
            "instance": self.instance,
            "pid": os.getpid(),
            "uptime_s": round(time.monotonic() - self.started, 1),
            "url": self.url,
            "sim": self.sim is not None,
            "metrics_url": None
            if self.metrics_server is None
            else f"http://127.0.0.1:{self.metrics_server.port}/metrics",
            "workers": self.board.workers(self.pool.slots),
            "rings": self.board.rings(self.pool.slots, channels),
            "channels": channels,
            "rate_limits": {**self.costs.figures(), "why": self.costs_note},
            "universe": self.listings.status() if self.listings is not None else None,
            "audit_interval_s": self.config.audit_interval,
        }
