"""The simulator's own ceiling: the same feed into a bare raw subscriber, measured like a pipeline.

A trial of this "pipeline" tells what the simulator itself can deliver on this machine at a rate: the
subscriber does nothing but take each book notification off the socket (the connection client on
picows, one orjson decode) and note its channel, change_id and arrival time, pinned where the
pipeline under test would run. A rate it does not sustain is above the simulator's ceiling, and a
feeder or cryptofeed trial there is "simulator-bound", never counted as the pipeline's limit.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import numpy as np
import psutil

from bench_e2e import consumers
from bench_e2e.analysis import Received

NAME = "simulator"


def bare_subscriber(
    ws_url: str, channels: list[str], credentials: tuple[str, str], out: str, shared: Any, cpu: int | None
) -> None:
    """Log in, subscribe the raw book channels, note every notification until told to stop; save it."""
    import uvloop

    consumers.pin(cpu)
    uvloop.run(_subscribe(ws_url, channels, credentials, out, shared))


async def _subscribe(
    ws_url: str, channels: list[str], credentials: tuple[str, str], out: str, shared: Any
) -> None:
    from feeder.client import Client, ClientConfig, Hooks

    index = {channel: i for i, channel in enumerate(channels)}
    got: list[tuple[int, int, int]] = []
    append, now_ns, updates, seen = got.append, time.time_ns, shared.updates, set()

    def on_notification(msg: dict, _recv_ns: int) -> None:
        params = msg["params"]
        chan = index.get(params["channel"])
        if chan is None:
            return
        append((chan, params["data"]["change_id"], now_ns()))
        updates.value = len(got)
        if chan not in seen:
            seen.add(chan)
            shared.channels_seen.value = len(seen)

    async def login(setup: Any) -> None:
        client_id, secret = credentials
        await setup.request(
            "public/auth",
            {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
        )

    client = Client(
        ClientConfig(url=ws_url, heartbeat="none"),
        on_notification=on_notification,
        hooks=Hooks(on_connected=login, subscribe_method="private/subscribe"),
    )
    await client.connect()
    await client.subscribe(channels)
    while not shared.stopping():
        await asyncio.sleep(0.05)
    np.savez(
        out,
        chan=np.array([g[0] for g in got], np.int32),
        cid=np.array([g[1] for g in got], np.int64),
        recv=np.array([g[2] for g in got], np.int64),
        flag=np.zeros(len(got), np.bool_),
        reader_lost=np.int64(0),
    )
    shared.port.value = 1  # saved; the subscription stays until the trial ends (the simulator keeps
    while os.getppid() == shared.parent_pid:  # a channel's send log only while someone subscribes)
        await asyncio.sleep(0.05)
    await client.close()


class BarePipeline:
    """The simulator into `bare_subscriber`, with the interface of the other pipelines."""

    name = NAME

    def __init__(self, layout: Any, ctx: Any, credentials: tuple[str, str]):
        self.layout, self.ctx, self.credentials = layout, ctx, credentials
        self.shared = consumers.Shared.make(ctx)
        self.proc: Any = None
        self.out = ""

    def start(self, sim: Any, names: list[str], workdir: str, spec: Any) -> None:
        self.out = os.path.join(workdir, "bare.npz")
        channels = [f"book.{name}.raw" for name in names]
        self.proc = self.ctx.Process(
            target=bare_subscriber,
            args=(sim.ws_url, channels, self.credentials, self.out, self.shared, self.layout.pipeline),
            name="bench-e2e-bare-subscriber",
            daemon=True,
        )
        self.proc.start()

    def check_alive(self) -> None:
        if not self.proc.is_alive():
            raise RuntimeError(f"the bare subscriber exited early (exit code {self.proc.exitcode})")

    def log_tail(self) -> str:
        return ""

    def processes(self) -> dict[str, psutil.Process]:
        return {"subscriber": psutil.Process(self.proc.pid)} if self.proc.is_alive() else {}

    def roles(self) -> dict[str, str]:
        return {"subscriber": "pipeline"}

    def memory(self) -> dict:
        return {}

    def events(self) -> dict:
        return {}

    def collect(self, names: list[str]) -> Received:
        self.shared.stop.value = True
        deadline = time.monotonic() + 20.0
        while not self.shared.port.value:
            self.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError("the bare subscriber did not save what it received within 20 s")
            time.sleep(0.01)
        with np.load(self.out) as data:
            return Received(data["chan"], data["cid"], data["recv"], data["flag"], reader_lost=0)

    def stop(self) -> None:
        self.shared.stop.value = True
        if self.proc is not None:
            self.proc.terminate()
            self.proc.join(20.0)
            if self.proc.is_alive():
                self.proc.kill()
                self.proc.join(5.0)
