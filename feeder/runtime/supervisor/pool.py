"""The worker processes: spawned from a warm spare, pinned, heard over their pipes, replaced when they die.

Rules it keeps:
- Workers are `spawn`ed; one spare process is kept started and imported, so a replacement only has to
  connect. Each is pinned to its slot's CPU (psutil).
- Everything a worker says arrives on its pipe: heartbeats (health figures), request answers, "ready",
  "fatal", connection events. Events are logged at a level a user can act on, and not at all once the
  feeder is stopping (a worker closing its own connection is no news).
- A worker that exits is replaced: its in-flight requests fail (WorkerLost), its rings are marked GAP
  (`RingRegistry.mark_gap`), and the restart policy (`core.restart`) says when to start the next
  process, or to give up on the slot (the others keep running; when none is left, `on_all_failed`).
- `stop()` asks every worker to stop, waits out the grace period, SIGKILLs the late ones and reaps them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import psutil

from feeder.core.workers import TRANSITIONS, WorkerEvent, WorkerState, all_failed, exit_reason
from feeder.runtime.supervisor.rings import RingRegistry
from feeder.runtime.supervisor.slots import Slot, WorkerLost
from feeder.runtime.worker import EXIT_FATAL, WorkerSpec, worker_main

log = logging.getLogger("feeder.supervisor")

_EXCHANGE_TROUBLE = ("disconnected", "heartbeat_dead")  # the connection heals itself: news, not alarm


class WorkerPool:
    def __init__(
        self,
        spec: Callable[[Slot], WorkerSpec],
        rings: RingRegistry,
        stopping: asyncio.Event,
        on_all_failed: Callable[[], None],
        on_universe: Callable[[Slot, dict[str, Any]], None] | None = None,
    ):
        """`on_universe` gets what workers say about the universe: `instrument_state` and `removed`
        messages, and `{"type": "connected"}` when a worker's connection is (re)established."""
        self.slots: list[Slot] = []
        self._spec, self._rings, self._stopping, self._on_all_failed = spec, rings, stopping, on_all_failed
        self._on_universe = on_universe
        self._ctx = multiprocessing.get_context("spawn")
        self._spare: tuple[Any, Connection] | None = None  # a started worker process waiting for its spec

    # --- processes ---------------------------------------------------------------------------------

    def spawn(self, slot: Slot) -> None:
        if slot.state is WorkerState.RESTARTING:
            slot.advance(WorkerEvent.SPAWN)
        process, parent = self._take_spare()
        parent.send(self._spec(slot))
        slot.new_process(process, parent, time.monotonic())
        with contextlib.suppress(psutil.Error, OSError):
            slot.ps = psutil.Process(process.pid)
            if slot.cpu is not None:
                slot.ps.cpu_affinity([slot.cpu])
        loop = asyncio.get_running_loop()
        loop.add_reader(parent.fileno(), self.receive, slot)
        loop.add_reader(process.sentinel, self._on_exit, slot)

    def _new_process(self) -> tuple[Any, Connection]:
        parent, child = self._ctx.Pipe()
        process = self._ctx.Process(target=worker_main, args=(child,), name="feeder-worker", daemon=True)
        process.start()
        child.close()
        return process, parent

    def _take_spare(self) -> tuple[Any, Connection]:
        """The ready spare process if there is a live one, else a fresh one; a new spare is started after."""
        spare, self._spare = self._spare, None
        if not self._stopping.is_set():
            asyncio.get_running_loop().call_soon(self._make_spare)
        if spare is not None and spare[0].is_alive():
            return spare
        return self._new_process()

    def _make_spare(self) -> None:
        if self._spare is None and not self._stopping.is_set():
            self._spare = self._new_process()

    def kill(self, slot: Slot, reason: str) -> None:
        """SIGKILL the slot's process (once: the kernel may take a while to tear down a big process);
        its exit then triggers the restart."""
        log.error("worker %d (pid %s) %s: killing it", slot.index, slot.pid, reason)
        slot.last_error, slot.killed = reason, slot.process
        with contextlib.suppress(OSError):
            os.kill(slot.process.pid, signal.SIGKILL)

    @staticmethod
    def stopped_by_kernel(slot: Slot) -> bool:
        """Whether the kernel shows the slot's process stopped (SIGSTOP)."""
        try:
            return slot.ps is not None and slot.ps.status() == psutil.STATUS_STOPPED
        except psutil.Error:
            return False

    # --- what workers say --------------------------------------------------------------------------

    def tell(self, slot: Slot, message: dict[str, Any]) -> bool:
        if slot.conn is None:
            return False
        try:
            slot.conn.send(message)
            return True
        except (OSError, ValueError):
            return False

    def drain(self, slot: Slot) -> None:
        """Handle every message waiting in the slot's pipe now (a supervisor that ran late must not
        blame a worker whose heartbeats wait there)."""
        with contextlib.suppress(OSError, EOFError, ValueError):
            while slot.conn is not None and slot.conn.poll() and self.receive(slot):
                pass

    def receive(self, slot: Slot) -> bool:
        """Handle one message from the worker's pipe; False at end of file."""
        conn = slot.conn
        assert conn is not None  # its reader is removed before it is closed (`_detach`)
        try:
            message = conn.recv()
        except (EOFError, OSError):
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(conn.fileno())
            return False
        kind = message.get("type")
        if kind == "hb":
            slot.on_heartbeat(message["health"], time.monotonic())
        elif kind == "rpc":
            future = slot.inflight.pop(message["id"], None)
            if future is not None and not future.done():
                future.set_result(message)
        elif kind == "ready" and WorkerEvent.READY in TRANSITIONS[slot.state]:
            slot.advance(WorkerEvent.READY)
            log.info("worker %d (pid %s) running: %s", slot.index, slot.pid, ", ".join(slot.rings))
        elif kind == "fatal":
            slot.last_error = message["error"].get("message")
            log.error("worker %d cannot start: %s", slot.index, slot.last_error)
        elif kind == "event":
            self._on_event(slot, message.get("name"), message.get("data") or {})
        elif kind in ("instrument_state", "removed") and self._on_universe is not None:
            self._on_universe(slot, message)
        return True

    def _on_event(self, slot: Slot, name: str | None, data: dict[str, Any]) -> None:
        if self._stopping.is_set() or slot.state is WorkerState.STOPPED:
            return
        if name == "connected" and self._on_universe is not None:
            self._on_universe(slot, {"type": "connected"})
        elif name in _EXCHANGE_TROUBLE:
            slot.last_error = str(data.get("reason") or name)
            log.info("worker %d: %s (%s); reconnecting", slot.index, name, slot.last_error)
        elif name == "gave_up":
            slot.last_error = str(data.get("reason") or name)
            log.error(
                "worker %d gave up connecting: %s", slot.index, slot.last_error
            )  # the reason has advice
        elif name == "subscription_refused":
            log.error("worker %d: exchange refused %s", slot.index, data.get("refused"))

    # --- exits and restarts ------------------------------------------------------------------------

    def _on_exit(self, slot: Slot) -> None:
        process = slot.process
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(process.sentinel)
        if slot.state is WorkerState.STOPPED:
            return
        process.join(timeout=1)
        reason = exit_reason(process.exitcode, EXIT_FATAL, slot.last_error)
        log.error("worker %d (pid %s) died: %s", slot.index, process.pid, reason)
        slot.last_error = reason
        for future in slot.inflight.values():
            if not future.done():
                future.set_exception(WorkerLost(reason))
        slot.inflight.clear()
        self._detach(slot)
        slot.retire_health()
        self._rings.mark_gap(slot.rings, f"worker {slot.index}")
        decision = slot.policy.on_failure(time.monotonic(), slot.started)
        if decision.give_up:
            slot.advance(WorkerEvent.GIVE_UP)
            log.critical(
                "worker %d restarted %d times in %g s: giving up on it; rings %s get no data; "
                "the other workers keep running",
                slot.index,
                slot.policy.max_restarts,
                slot.policy.window_s,
                ", ".join(slot.rings),
            )
            if all_failed(s.state for s in self.slots):
                log.critical("every worker failed: stopping")
                self._on_all_failed()
            return
        slot.advance(WorkerEvent.RESTART)
        slot.restarts += 1
        asyncio.get_running_loop().call_later(decision.delay_s, self._respawn, slot)

    def _respawn(self, slot: Slot) -> None:
        if slot.state is WorkerState.RESTARTING and not self._stopping.is_set():
            self.spawn(slot)

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

    # --- stopping ----------------------------------------------------------------------------------

    async def stop(self, grace_s: float) -> None:
        """Stop every worker (and the spare); SIGKILL those still running after `grace_s`."""
        spare, self._spare = self._spare, None
        if spare is not None:
            spare[1].close()  # the spare exits on EOF
            spare[0].join(timeout=5)
        for slot in self.slots:
            if slot.state is not WorkerState.STOPPED:
                slot.advance(WorkerEvent.STOP)
            self.tell(slot, {"type": "stop"})
        deadline = time.monotonic() + grace_s
        for slot in self.slots:
            await self._reap(slot, deadline)

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

    def kill_all(self) -> None:
        """SIGKILL the spare and every worker at once (a forced exit)."""
        processes = [self._spare[0]] if self._spare is not None else []
        processes += [s.process for s in self.slots if s.process is not None and s.process.is_alive()]
        for process in processes:
            with contextlib.suppress(OSError):
                os.kill(process.pid, signal.SIGKILL)
