"""cryptofeed's Deribit feed pointed at the simulator, publishing books through its ZMQ backend.

Overrides, all inside this benchmark (site-packages is never edited):
- `SimDeribit` (a subclass of cryptofeed's `Deribit`): REST endpoint = the simulator's HTTP API (the
  same four `get_instruments` routes cryptofeed asks Deribit), WebSocket = the simulator. cryptofeed's
  `WSAsyncConn` refuses any address but `wss://`, and the simulator speaks plain `ws://` on localhost,
  so the connections are built with a placeholder and their address swapped before they open.
- `SequencedBookZMQ` (a subclass of `BookZMQ`): adds the book's `sequence_number` (Deribit's
  change_id) to each published dict, which cryptofeed's delta dicts leave out; the benchmark needs it
  to match each update with the simulator's send time. One dict key: no measurable cost.
Everything else is cryptofeed 2.4 as shipped: uvloop, authenticated `book.<instrument>.raw`
channels (cryptofeed always asks for raw books on Deribit), Decimal parsing, its order book, and the
ZMQ backend's default snapshot every 1000 deltas; `max_depth=10` so both pipelines keep a top-10 book.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from typing import Any

PLACEHOLDER = "wss://simulator.invalid/ws/api/v2"
CURRENCIES = ("BTC", "ETH", "USDC", "SOL")  # the routes cryptofeed's Deribit class asks for
DEPTH = 10


def sim_deribit(ws_url: str, http_base: str) -> type:
    """A `Deribit` feed class whose endpoints are the simulator's."""
    from cryptofeed.connection import RestEndpoint, Routes, WebsocketEndpoint
    from cryptofeed.exchanges import Deribit

    routes = Routes([f"/api/v2/public/get_instruments?currency={c}" for c in CURRENCIES])

    class SimDeribit(Deribit):
        websocket_endpoints = [WebsocketEndpoint(PLACEHOLDER)]  # noqa: RUF012 (cryptofeed's class attributes)
        rest_endpoints = [RestEndpoint(http_base, routes=routes)]  # noqa: RUF012

        def connect(self) -> list:
            connections = super().connect()
            for conn, *_ in connections:
                conn.address = ws_url
            return connections

    return SimDeribit


def sequenced_book_zmq(port: int) -> Any:
    """cryptofeed's ZMQ book backend, plus `sequence_number` in every dict it publishes."""
    from cryptofeed.backends.zmq import BookZMQ

    class SequencedBookZMQ(BookZMQ):
        async def __call__(self, book: Any, receipt_timestamp: float) -> None:
            self._sequence = book.sequence_number
            await super().__call__(book, receipt_timestamp)

        async def write(self, data: dict) -> None:
            data["sequence_number"] = self._sequence
            await super().write(data)

    return SequencedBookZMQ(port=port)


def run(
    ws_url: str,
    http_base: str,
    instruments: list[str],
    zmq_port: int,
    workdir: str,
    cpu: int | None,
    parent_pid: int,
) -> None:
    """The feedhandler process: load symbols over HTTP, subscribe, publish to ZMQ until SIGTERM."""
    from cryptofeed import FeedHandler
    from cryptofeed.defines import L2_BOOK

    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    threading.Thread(target=_stop_when_orphaned, args=(parent_pid,), daemon=True).start()
    feed_class = sim_deribit(ws_url, http_base)
    mapping = feed_class.symbol_mapping()  # the HTTP download cryptofeed does before anything else
    by_instrument = {exchange: std for std, exchange in mapping.items()}
    symbols = [by_instrument[name] for name in instruments]
    with open(os.path.join(workdir, "cryptofeed-symbols.json"), "w") as f:
        json.dump(dict(zip(symbols, instruments, strict=True)), f)
    config = {
        "log": {"filename": os.path.join(workdir, "cryptofeed.log"), "level": "WARNING"},
        "deribit": {"key_id": "demo-id", "key_secret": "demo-secret"},
        "uvloop": True,
    }
    handler = FeedHandler(config=config)
    handler.add_feed(
        feed_class(
            config=config,
            symbols=symbols,
            channels=[L2_BOOK],
            callbacks={L2_BOOK: sequenced_book_zmq(zmq_port)},
            max_depth=DEPTH,
        )
    )
    asyncio.set_event_loop(asyncio.new_event_loop())  # FeedHandler.run asks for the current loop
    handler.run()


def _stop_when_orphaned(parent_pid: int) -> None:
    """SIGTERM this process (cryptofeed then shuts down cleanly) once the benchmark is gone."""
    while os.getppid() == parent_pid:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)
