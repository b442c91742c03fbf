"""The transport's fast path and its fallback: messages dispatched as parsed, order kept when a
fragmented message forces websockets' own assembler. (The simulator never fragments, so a plain
websockets server on a real socket sends the fragments here; no exchange behaviour is involved.)"""

from __future__ import annotations

import websockets
from client.clientkit import Notes, run, until

from feeder.client import Client, ClientConfig


async def _serve_fragments(ws) -> None:
    await ws.send('{"n": 1}')
    await ws.send(['{"n": ', "2}"])  # one message in two frames
    await ws.send('{"n": 3}')
    await ws.send(b'{"n": 4}')  # a binary frame carrying JSON
    await ws.wait_closed()


def test_messages_keep_their_order_across_a_fragmented_one():
    async def body():
        notes = Notes()
        async with websockets.serve(_serve_fragments, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            client = Client(
                ClientConfig(url=f"ws://127.0.0.1:{port}/", heartbeat="none"), on_notification=notes
            )
            await client.connect()
            try:
                await until(lambda: len(notes.messages) == 4, "four messages")
                return [m["n"] for m in notes.messages], client.metrics()["frames_in"]
            finally:
                await client.close()

    order, frames = run(body())
    assert order == [1, 2, 3, 4] and frames == 4
