"""The soak's fault menu: what can be injected, when, and how each fault is carried out.

Rules kept here:
- `plan` is pure: a seeded schedule of fault kinds, evenly spaced, cycling through a shuffled menu so
  every kind comes up before any repeats (30 faults cover the whole menu).
- Simulator faults (feeder/sim/faults.py has the catalogue) go to ONE connection, one carrying the
  chosen instrument's book (with redundancy 2 two do: the one with the lower id, so a run draws the same
  random numbers whatever the redundancy), so each fault's blast radius (`rings`) is known for the
  recovery and blind-time figures.
- Process faults act on real pids: a worker's from FeederHandle.status(), the slow consumer's from the
  soak itself. Signals go through psutil, which refuses a pid that was reused by another process.
- Each injection returns what happened as a plain dict, and any follow-up (SIGCONT after a SIGSTOP)
  as (delay, action) pairs for the soak's clock to run.
"""

from __future__ import annotations

import contextlib
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import psutil

from feeder.exchanges.deribit.channels import ChannelConfig, ChannelMap

INSTRUMENT_FAULTS = (
    "gap",
    "duplicate",
    "reorder",
    "wrong_types",
    "nan_price",
    "negative_price",
    "malformed",
    "phantom",  # a chained, uncrossed level the truth lacks: only the live audit can find it
    "phantom_cross",  # a chained bid above the best ask: the crossed-book check finds it
)
PHANTOMS = ("phantom", "phantom_cross")
CONNECTION_FAULTS = (
    "drop",
    "stall",
    "stall_pongs",  # a stall behind a WebSocket layer that still answers pings
    "rate_limit",
    "huge_frame",
    "unknown_method",
    "unknown_channel",
    "heartbeat",
    "delay_test_request",
    "drop_test_request",
    "refuse_reconnect",
)
PROCESS_FAULTS = ("kill_worker", "stop_worker", "slow_consumer")
KINDS = INSTRUMENT_FAULTS + CONNECTION_FAULTS + PROCESS_FAULTS

FollowUp = tuple[float, Callable[[], None]]


@dataclass(frozen=True)
class Planned:
    t_s: float  # seconds after the soak's start
    kind: str


def plan(kinds: tuple[str, ...], count: int, first_s: float, last_s: float, seed: int) -> list[Planned]:
    """`count` faults evenly spaced over [first_s, last_s], kinds from a reshuffled cycle of `kinds`."""
    if count <= 0 or not kinds:
        return []
    rng = random.Random(f"{seed}:plan")
    step = (last_s - first_s) / max(count - 1, 1)
    cycle: list[str] = []
    out = []
    for i in range(count):
        if not cycle:
            cycle = list(kinds)
            rng.shuffle(cycle)
        out.append(Planned(round(first_s + i * step, 3), cycle.pop()))
    return out


def check_kinds(kinds: list[str]) -> tuple[str, ...]:
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise ValueError(f"unknown fault kinds {unknown}; known: {', '.join(KINDS)}")
    return tuple(kinds)


class Injector:
    """Carries out faults against a running simulator, feeder and slow consumer."""

    def __init__(
        self,
        sim: Any,  # feeder.sim.SimServer
        status: Callable[[], dict],  # the feeder's latest status (FeederHandle.status())
        instruments: list[str],
        slow_consumer_pid: int | None,
        lap_s: float,
        hang_timeout_s: float,
        seed: int,
    ):
        self.sim, self.status = sim, status
        self.instruments = instruments
        self.slow_consumer_pid = slow_consumer_pid
        self.lap_s = lap_s
        self.hang_timeout_s = hang_timeout_s
        self.rng = random.Random(f"{seed}:inject")
        self.channels = ChannelMap(ChannelConfig(), authenticated=True)
        self.book_channels = {self.channels.route(self.book_ring(i)).channel: i for i in instruments}

    def book_ring(self, instrument: str) -> str:
        return self.channels.ring_name("book", instrument)

    def inject(self, kind: str) -> tuple[dict, list[FollowUp]]:
        """Carry out one fault; returns its record and its follow-ups."""
        event: dict[str, Any] = {"kind": kind, "t_ns": time.time_ns(), "rings": []}
        handler = getattr(self, kind) if kind in PROCESS_FAULTS else partial(self.sim_fault, kind)
        try:
            followups = handler(event)
        except Exception as exc:  # a fault that could not be injected is reported, not fatal
            event["error"] = f"{type(exc).__name__}: {exc}"
            followups = []
        return event, followups

    # --- simulator faults --------------------------------------------------------------------------

    def sim_fault(self, kind: str, event: dict) -> list[FollowUp]:
        carried = self._carried()
        instrument = self.rng.choice(sorted(carried))
        conn, subscriptions = carried[instrument]
        event["target"] = {"instrument": instrument, "conn": conn}
        if kind in INSTRUMENT_FAULTS:
            params: dict[str, Any] = {"instrument": instrument, "conn": conn}
            if kind == "gap":
                params["count"] = self.rng.randint(1, 5)
            event["rings"] = [self.book_ring(instrument)]
        else:
            params = {"conn": conn, **self._connection_params(kind)}
            event["rings"] = sorted(
                self.channels.ring_name("book", ch.split(".")[1])
                for ch in subscriptions
                if ch.startswith("book.")
            )
        if kind == "stall_pongs":
            params["pongs"] = True
            kind = "stall"
        if kind == "refuse_reconnect":
            how = params.pop("how")
            self.sim.fault("refuse", seconds=params.pop("seconds"), how=how)
            kind = "drop"
        event["params"] = params
        event["result"] = self.sim.fault(kind, **params)
        return []

    def _connection_params(self, kind: str) -> dict[str, Any]:
        rng = self.rng
        if kind == "drop":
            return {"how": rng.choice(("close", "reset"))}
        if kind in ("stall", "stall_pongs"):
            return {"seconds": round(rng.uniform(1.0, 4.0), 2)}
        if kind == "delay_test_request":
            return {"seconds": round(rng.uniform(1.0, 5.0), 2)}
        if kind == "refuse_reconnect":
            return {"seconds": round(rng.uniform(1.0, 3.0), 2), "how": rng.choice(("429", "refuse"))}
        return {}

    def _carried(self) -> dict[str, tuple[int, list[str]]]:
        """Instrument -> (connection id, its subscriptions), for books some connection carries now
        (a worker that is reconnecting or restarting carries none)."""
        out: dict[str, tuple[int, list[str]]] = {}
        for c in sorted(self.sim.connections(), key=lambda c: c["id"]):
            for channel in c["subscriptions"]:
                if channel in self.book_channels:
                    out.setdefault(self.book_channels[channel], (c["id"], c["subscriptions"]))
        if not out:
            raise LookupError("no simulator connection carries a book channel right now")
        return out

    # --- process faults ----------------------------------------------------------------------------

    def _worker(self, event: dict) -> psutil.Process:
        workers = [w for w in self.status().get("workers", []) if w.get("pid") and w["state"] == "running"]
        if not workers:
            raise LookupError("no running worker")
        worker = self.rng.choice(workers)
        event["target"] = {"worker": worker["index"], "pid": worker["pid"]}
        event["rings"] = sorted(r for r in worker["rings"] if r.startswith("book."))
        return psutil.Process(worker["pid"])

    def kill_worker(self, event: dict) -> list[FollowUp]:
        self._worker(event).send_signal(signal.SIGKILL)
        return []

    def stop_worker(self, event: dict) -> list[FollowUp]:
        """SIGSTOP a worker, either shorter than the supervisor's hang timeout or longer (then the
        supervisor must kill and replace it); SIGCONT it afterwards if it is still there."""
        proc = self._worker(event)
        longer = self.rng.random() < 0.5
        seconds = self.hang_timeout_s + 2.0 if longer else self.hang_timeout_s / 2
        event["params"] = {"seconds": seconds, "beyond_hang_timeout": longer}
        proc.suspend()
        return [(seconds, lambda: _resume(proc))]

    def slow_consumer(self, event: dict) -> list[FollowUp]:
        """SIGSTOP the slow consumer long enough for the writers to lap it, then let it go on."""
        if self.slow_consumer_pid is None:
            raise LookupError("no slow consumer (needs --consumers 2 or more)")
        proc = psutil.Process(self.slow_consumer_pid)
        event["target"] = {"consumer_pid": proc.pid}
        event["params"] = {"seconds": self.lap_s}
        proc.suspend()
        return [(self.lap_s, lambda: _resume(proc))]


def _resume(proc: psutil.Process) -> None:
    with contextlib.suppress(psutil.NoSuchProcess):  # killed meanwhile (the supervisor's watchdog)
        proc.resume()
