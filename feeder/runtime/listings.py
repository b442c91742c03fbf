"""The universe at run time: instruments listed and ended while the feeder runs, in the supervisor.

The supervisor hands it what workers report from `instrument.state.*` (`on_states`) and what they
answer to a `remove` (`on_removed`); it decides with the pure plan (`plan.py`) and the selection, and
acts through the callables it was given (create a ring, send a worker a message, ask the exchange).
Rules it keeps:
- A listing that matches the selection gets its metadata from the exchange (`public/get_instrument`),
  its rings (if /dev/shm has room: else it is refused, loudly), its inventory entry, and is sent to the
  worker of its unit (a chain's worker, or the least loaded one), which subscribes it. Rings exist
  before any worker writes them and before readers can see the entry.
- An instrument that ends (`settled` at its expiry, `closed`, `terminated` ...) is sent to its worker
  as `remove`: the worker publishes its FINAL records and closes its writers; then its per-instrument
  rings are marked closed, its entry ended, and the rings removed `removal_grace` seconds later. A
  worker that does not answer in `REMOVE_WAIT_S` (dead, restarting) does not hold that up.
- After the connection that carries the universe channels comes back, the catalog is asked again and
  compared (listings and ends missed while it was down are applied), since the exchange does not
  repeat notifications.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any

from feeder.errors import BadMessage, FeederError
from feeder.exchanges.deribit.instruments import InstrumentInfo
from feeder.exchanges.deribit.notices import InstrumentState, parse_instrument_state
from feeder.runtime.catalog import Catalog
from feeder.runtime.plan import Plan, RingSpec, Served
from feeder.runtime.resolve import Resolved
from feeder.runtime.sizing import SharedMemoryTooSmall, check_free
from feeder.universe.inventory import InventoryWriter, entry_for

log = logging.getLogger("feeder.listings")

PLATFORM_STATE = "platform_state"
REMOVE_WAIT_S = 5.0  # how long an ended instrument's worker has to publish its FINAL records
INVENTORY_MIN = 4096


class Listings:
    def __init__(
        self,
        resolved: Resolved,
        plan: Plan,
        instance: str,
        removal_grace: float,
        *,
        create_ring: Callable[[RingSpec], None],
        mark_closed: Callable[[str], None],
        remove_ring: Callable[[str], None],
        send: Callable[[int, dict[str, Any]], bool],
        rpc: Callable[[str, dict[str, Any]], Awaitable[Any]],
        workers_changed: Callable[[], None],
    ):
        self.resolved, self.plan, self.grace = resolved, plan, removal_grace
        self.selection = resolved.selection
        self.create_ring, self.mark_closed, self.remove_ring = create_ring, mark_closed, remove_ring
        self.send, self.rpc, self.workers_changed = send, rpc, workers_changed
        self.ids: dict[str, int] = resolved.catalog.ids()
        self.state_channels = self.selection.state_channels(resolved.instruments)
        self.universe_worker = plan.place_universe() if self.state_channels else None
        size = max(INVENTORY_MIN, 1 << (4 * len(resolved.instruments)).bit_length())
        self.inventory = InventoryWriter(instance, size)
        self.pending: set[str] = set()  # listings whose metadata is being asked
        self.ending: dict[str, tuple[asyncio.TimerHandle, list[Served], list[str]]] = {}  # removes sent
        self.counts = {"listed": 0, "ended": 0, "refused": 0, "ignored": 0}
        self._connections = 0
        self._tasks: set[asyncio.Task[None]] = set()

    # --- start -------------------------------------------------------------------------------------

    def start(self) -> None:
        """Every ring of the plan, then the inventory entries (readers see entries only for rings that
        exist)."""
        for spec in self.plan.rings.values():
            self.create_ring(spec)
        self._enter(self.plan.served.values())

    def spec(self, worker: int) -> dict[str, Any]:
        """The WorkerSpec fields of `worker`: its routes, ids, indexes and market channels."""
        served = [s for s in self.plan.served.values() if self._serves(worker, s)]
        watch = [PLATFORM_STATE] + (self.state_channels if worker == self.universe_worker else [])
        return {
            "rings": (),
            "members": tuple(self.plan.routes(worker)),
            "ids": self.ids,
            "indexes": {s.info.name: s.info.price_index for s in served},
            "watch": tuple(watch),
        }

    def _serves(self, worker: int, served: Served) -> bool:
        return any(self.plan.worker_of[unit] == worker for unit in served.units.values())

    def _enter(self, served: Iterable[Served]) -> None:
        now = time.time_ns()
        refused = self.inventory.add([entry_for(s.info, s.ring_symbol, s.streams_mask, now) for s in served])
        for name in refused:
            log.error("the inventory is full: %s is served but not listed in it", name)

    # --- listings and ends -------------------------------------------------------------------------

    def on_states(self, events: list[tuple[str, str, int, str]]) -> None:
        """`instrument_state` events from the universe worker: (name, state, timestamp_ms, channel)."""
        for name, state, timestamp_ms, channel in events:
            try:
                event = parse_instrument_state(
                    {"instrument_name": name, "state": state, "timestamp": timestamp_ms}
                )
            except BadMessage:
                continue
            self._on_state(event, channel)

    def _on_state(self, event: InstrumentState, channel: str) -> None:
        name = event.instrument
        served = self.plan.served.get(name)
        if event.listed:
            if served is None and name not in self.pending:
                self.pending.add(name)
                self._spawn(self._list(name, channel.rpartition(".")[2]))
        elif served is not None and event.ends(served.info.expiration_ms):
            self.end([name])
        else:
            self.counts["ignored"] += 1

    async def _list(self, name: str, currency: str) -> None:
        try:
            obj = await self.rpc("public/get_instrument", {"instrument_name": name})
            info = InstrumentInfo.from_api(obj, "" if currency == "any" else currency)
        except (FeederError, BadMessage) as exc:
            log.warning("listing %s: cannot get its metadata (%s): not served", name, exc)
            self.counts["refused"] += 1
            return
        finally:
            self.pending.discard(name)
        if info is None or not self.selection.matches(info):
            self.counts["ignored"] += 1
            return
        self.list([info])

    def list(self, infos: list[InstrumentInfo]) -> list[str]:
        """Serve new instruments now; returns the names served."""
        infos = [i for i in infos if i.name not in self.plan.served]
        if not infos:
            return []
        new_served, new_rings = self.plan.add(infos)
        try:
            check_free(sum(spec.size_bytes for spec in new_rings))
        except SharedMemoryTooSmall as exc:
            self.plan.remove([s.info.name for s in new_served])
            self.counts["refused"] += len(new_served)
            log.error("listing %s refused: %s", ", ".join(s.info.name for s in new_served), exc)
            return []
        for spec in new_rings:
            self.create_ring(spec)
        self.ids.update({s.info.name: s.info.instrument_id for s in new_served})
        self._enter(new_served)
        for worker in range(self.plan.workers):
            members = self.plan.routes(worker, new_served)
            if members:
                indexes = {name: self.plan.served[name].info.price_index for _, name, _ in members}
                ids = {name: iid for _, name, iid in members}
                self.send(worker, {"type": "add", "members": members, "ids": ids, "indexes": indexes})
        self.counts["listed"] += len(new_served)
        self.workers_changed()
        log.info("listed %s", ", ".join(s.info.name for s in new_served))
        return [s.info.name for s in new_served]

    def end(self, names: builtins.list[str]) -> None:  # (`list` here is the method above)
        """Stop serving instruments that ended."""
        workers = {
            worker
            for name in names
            if name in self.plan.served
            for worker in {self.plan.worker_of[u] for u in self.plan.served[name].units.values()}
        }
        gone, dropped = self.plan.remove(names)
        if not gone:
            return
        loop = asyncio.get_running_loop()
        ended = [s.info.name for s in gone]
        for worker in workers:
            self.send(worker, {"type": "remove", "instruments": ended})
        key = ",".join(ended)
        self.ending[key] = (loop.call_later(REMOVE_WAIT_S, self._ended, key), gone, dropped)
        self.counts["ended"] += len(gone)
        self.workers_changed()
        log.info("ended %s", ", ".join(ended))

    def on_removed(self, instruments: builtins.list[str]) -> None:
        """A worker published the FINAL records of `instruments` and closed their writers."""
        self._ended(",".join(instruments))

    def _ended(self, key: str) -> None:
        """The FINAL records are out (or the worker did not answer in time): close what ended."""
        pending = self.ending.pop(key, None)
        if pending is None:
            return
        handle, gone, dropped = pending
        handle.cancel()
        self.inventory.end([s.info.instrument_id for s in gone], time.time_ns())
        for ring in dropped:
            self.mark_closed(ring)
        asyncio.get_running_loop().call_later(self.grace, self._remove_rings, dropped)

    def _remove_rings(self, rings: builtins.list[str]) -> None:
        for ring in rings:
            if ring not in self.plan.rings:  # listed again meanwhile: it is in use
                self.remove_ring(ring)

    # --- catching up -------------------------------------------------------------------------------

    def on_connected(self, worker: int) -> None:
        """The universe worker (re)connected: after the first time, compare with the catalog."""
        if worker != self.universe_worker:
            return
        self._connections += 1
        if self._connections > 1:
            self._spawn(self.catch_up())

    async def catch_up(self) -> None:
        catalog = Catalog()
        try:
            for currency in self.selection.fetch_currencies:
                catalog.add(await self.rpc("public/get_instruments", {"currency": currency}), currency)
        except (FeederError, BadMessage) as exc:
            log.warning("could not compare the universe with the exchange's catalog: %s", exc)
            return
        listed = {info.name for info in catalog.instruments}
        self.ids.update(catalog.ids())
        missing = [
            info
            for info in catalog.instruments
            if info.name not in self.plan.served and self.selection.matches(info)
        ]
        ended = [name for name in self.plan.served if name not in listed]
        if missing:
            self.list(missing)
        if ended:
            self.end(ended)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def status(self) -> dict[str, Any]:
        return {
            "instruments": len(self.plan.served),
            "follows": self.state_channels,
            **self.counts,
        }

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for handle, _, _ in self.ending.values():
            handle.cancel()
        self.inventory.close()
