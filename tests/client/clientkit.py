"""Helpers for the connection client's tests: async runner, waiting, events, the adapter's part.

Tests here play the exchange adapter's part where the client needs one (subscribe methods, auth in
`on_connected`); the simulator is the real server, in its own process, over real sockets.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

import uvloop

from feeder.client import ClientConfig, Event, Hooks, Setup
from feeder.sim import SimServer

INSTRUMENT = "BTC-PERPETUAL"
BOOK = f"book.{INSTRUMENT}.100ms"
CREDENTIALS = {"client-id": "client-secret"}
DEADLINE = 30.0


def run(coro: Coroutine, timeout: float = 120.0) -> Any:
    """Run an async test body on uvloop, failing (not hanging) after `timeout` seconds."""
    return uvloop.run(asyncio.wait_for(coro, timeout))


async def call(fn: Callable, *args: Any, **kwargs: Any) -> Any:
    """A blocking simulator control call, off the event loop (so the client keeps running)."""
    return await asyncio.to_thread(fn, *args, **kwargs)


async def until(condition: Callable[[], Any], what: str, timeout: float = DEADLINE) -> Any:
    """Wait for a condition on client state with a deadline (the async twin of helpers.wait_until)."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.01)


def channel_method(action: str) -> Callable[[str], str]:
    """Deribit's rule, as the adapter gives it: private channels and raw feeds need private/*."""

    def method(channel: str) -> str:
        private = channel.startswith("user.") or channel.endswith(".raw")
        return f"{'private' if private else 'public'}/{action}"

    return method


def auth_with(client_id: str, secret: str) -> Callable[[Setup], Coroutine]:
    async def on_connected(setup: Setup) -> None:
        await setup.request(
            "public/auth",
            {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
        )

    return on_connected


def hooks(**overrides: Any) -> Hooks:
    return Hooks(
        subscribe_method=channel_method("subscribe"),
        unsubscribe_method=channel_method("unsubscribe"),
        **overrides,
    )


def config(sim: SimServer, **overrides: Any) -> ClientConfig:
    base: dict[str, Any] = {
        "url": sim.ws_url,
        "heartbeat": "deribit",
        "heartbeat_interval": 2.0,  # silence limit 4 s: no false alarms on a loaded machine
        "initial_delay": 0.05,
        "max_backoff": 0.5,
        "request_timeout": 10.0,
        "connect_timeout": 10.0,
    }
    return ClientConfig(**{**base, **overrides})


class Events:
    """Every event a client reported, and a way to wait for the next ones."""

    def __init__(self) -> None:
        self.all: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.all.append(event)

    def named(self, name: str) -> list[Event]:
        return [e for e in self.all if e.name == name]

    async def wait(self, name: str, count: int = 1, timeout: float = DEADLINE) -> list[Event]:
        await until(lambda: len(self.named(name)) >= count, f"{count} {name!r} event(s)", timeout)
        return self.named(name)


class Notes:
    """An on_notification handler that keeps what it got."""

    def __init__(self) -> None:
        self.messages: list[dict] = []
        self.recv_ns: list[int] = []

    def __call__(self, msg: dict, recv_ns: int) -> None:
        self.messages.append(msg)
        self.recv_ns.append(recv_ns)

    def on(self, channel: str) -> list[dict]:
        return [m for m in self.messages if m.get("params", {}).get("channel") == channel]

    def has_change(self, channel: str, change_id: int) -> bool:
        """A book notification on `channel` carried `change_id` (100ms channels aggregate)."""
        return any(m["params"]["data"].get("change_id") == change_id for m in self.on(channel))

    async def flowing(self, sim: Any, channel: str, instrument: str) -> None:
        """Publish book changes until one arrives: the stream flows again (a fault may eat the next
        message or two, and a 100ms channel merges changes published within one interval)."""
        deadline = time.monotonic() + DEADLINE
        while True:
            last = (await call(sim.publish, 1))["last"][instrument]
            try:
                await until(lambda cid=last: self.has_change(channel, cid), "a book change", timeout=1.0)
                return
            except AssertionError:
                if time.monotonic() > deadline:
                    raise


class RaisingNotes(Notes):
    """Keeps what it got, then raises (an adapter with a bug)."""

    def __call__(self, msg: dict, recv_ns: int) -> None:
        super().__call__(msg, recv_ns)
        raise ValueError("adapter bug")


def only_conn(sim: SimServer) -> int:
    conns = sim.connections()
    assert len(conns) == 1, conns
    return conns[0]["id"]
