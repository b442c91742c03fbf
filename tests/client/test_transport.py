"""The link on both engines (websockets' Sans-I/O protocol, picows), over real sockets: frames the
simulator never sends come from tiny local servers (a websockets server, or a raw TCP server that
speaks just enough HTTP); TLS against the simulator. No exchange behaviour is involved here."""

from __future__ import annotations

import asyncio
import os

import pytest
import websockets
from client.clientkit import Events, Notes, run, until
from websockets.utils import accept_key

from feeder.client import Client, ClientConfig, ConnState
from feeder.client.transport import picows_installed
from feeder.errors import ConnectFailed
from feeder.sim import SimServer

ENGINES = [
    "websockets",
    pytest.param(
        "picows", marks=pytest.mark.skipif(not picows_installed(), reason="feeder[picows] not installed")
    ),
]


def _config(port: int, engine: str, **overrides) -> ClientConfig:
    base = {"url": f"ws://127.0.0.1:{port}/", "heartbeat": "none", "transport": engine, "initial_delay": 0.05}
    return ClientConfig(**{**base, **overrides})


async def _serving(handler, body):
    """Run `body(port)` while a websockets server runs `handler` for every connection."""
    async with websockets.serve(handler, "127.0.0.1", 0, max_size=None, compression=None) as server:
        return await body(server.sockets[0].getsockname()[1])


@pytest.mark.parametrize("engine", ENGINES)
def test_messages_arrive_whole_and_in_order_across_fragmented_ones(engine):
    async def handler(ws):
        await ws.send('{"n": 1}')
        await ws.send(['{"n": ', "2}"])  # one message in two frames
        await ws.send('{"n": 3}')
        await ws.send([b'{"n": ', b"4", b"}"])  # binary, three frames
        await ws.send(b'{"n": 5}')
        await ws.wait_closed()

    async def body(port):
        notes = Notes()
        client = Client(_config(port, engine), on_notification=notes)
        await client.connect()
        try:
            await until(lambda: len(notes.messages) == 5, "five messages")
            return [m["n"] for m in notes.messages], client.metrics()["frames_in"]
        finally:
            await client.close()

    order, frames = run(_serving(handler, body))
    assert order == [1, 2, 3, 4, 5] and frames == 5


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("fragmented", [False, True], ids=["one_frame", "fragments"])
def test_a_message_over_max_frame_size_is_bad_input_and_the_connection_is_replaced(engine, fragmented):
    connections: list[int] = []

    async def handler(ws):
        connections.append(1)
        if len(connections) == 1:
            big = '{"pad": "' + "x" * 3000 + '"}'
            await ws.send([big[i : i + 700] for i in range(0, len(big), 700)] if fragmented else big)
        await ws.send('{"n": "after"}')
        await ws.wait_closed()

    async def body(port):
        events, notes = Events(), Notes()
        client = Client(_config(port, engine, max_frame_size=1024), on_notification=notes, on_event=events)
        await client.connect()
        try:
            await until(lambda: notes.messages, "a message on the new connection")
            return client.metrics(), events.named("disconnected")[0].data, notes.messages
        finally:
            await client.close()

    metrics, disconnected, messages = run(_serving(handler, body))
    assert metrics["bad_input"] == {"oversized_frame": 1} and metrics["connects"] == 2
    assert "1009" in disconnected["reason"] and disconnected["category"] == "recoverable"
    assert messages == [{"n": "after"}]


@pytest.mark.parametrize("engine", ENGINES)
def test_the_server_s_pings_are_answered(engine):
    async def handler(ws):
        pong = await ws.ping(b"are you there")
        await asyncio.wait_for(pong, 10)
        await ws.send('{"pong": "seen"}')
        await ws.wait_closed()

    async def body(port):
        notes = Notes()
        client = Client(_config(port, engine), on_notification=notes)
        await client.connect()
        try:
            await until(lambda: notes.messages, "the server to see our pong")
            return notes.messages
        finally:
            await client.close()

    assert run(_serving(handler, body)) == [{"pong": "seen"}]


@pytest.mark.parametrize("engine", ENGINES)
def test_an_abrupt_close_is_a_recoverable_loss_and_the_client_reconnects(engine):
    connections: list[int] = []

    async def handler(ws):
        connections.append(1)
        if len(connections) == 1:
            ws.transport.abort()
            return
        await ws.wait_closed()

    async def body(port):
        events = Events()
        client = Client(_config(port, engine), on_event=events)
        await client.connect()
        try:
            await until(
                lambda: client.metrics()["connects"] == 2 and client.state is ConnState.CONNECTED, "2nd"
            )
            return events.named("disconnected")[0].data, client.metrics()["connects"]
        finally:
            await client.close()

    disconnected, connects = run(_serving(handler, body))
    assert disconnected["category"] == "recoverable" and connects == 2


async def _raw_server(complete_handshake: bool, seen: list[bytes]):
    """A TCP server that reads everything and never answers (or answers only the HTTP upgrade)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        if complete_handshake:
            key = next(
                line.split(b":", 1)[1].strip()
                for line in request.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key:")
            )
            writer.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: " + accept_key(key.decode()).encode() + b"\r\n\r\n"
            )
        while chunk := await reader.read(65536):
            seen.append(chunk)
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_server_that_never_completes_the_handshake_times_out_and_is_retried(engine):
    async def body():
        server = await _raw_server(complete_handshake=False, seen=[])
        port = server.sockets[0].getsockname()[1]
        events = Events()
        client = Client(_config(port, engine, connect_timeout=0.3, max_retries=1), on_event=events)
        try:
            with pytest.raises(ConnectFailed) as info:
                await client.connect()
            return info.value, events
        finally:
            server.close()

    error, events = run(body())
    assert "connect_timeout" in str(error) and not error.fatal and "after 1 retries" in error.advice
    assert len(events.named("reconnecting")) == 1 and events.named("disconnected") == []


@pytest.mark.parametrize("engine", ENGINES)
def test_close_aborts_a_server_that_never_answers_the_close_frame(engine):
    async def body():
        seen: list[bytes] = []
        server = await _raw_server(complete_handshake=True, seen=seen)
        port = server.sockets[0].getsockname()[1]
        client = Client(_config(port, engine, close_timeout=0.3))
        try:
            await client.connect()
            await client.close(timeout=10.0)
            await until(lambda: seen, "the close frame at the server")
            return client.state, b"".join(seen)
        finally:
            server.close()

    state, received = run(body())
    assert state is ConnState.CLOSED
    assert received[0] & 0x0F == 0x8  # a close frame went out before the abort


def _tls_sim(monkeypatch) -> SimServer:
    sim = SimServer(instruments=["BTC-PERPETUAL"], rate=0, tls=True).start()
    monkeypatch.setenv("SSL_CERT_FILE", sim.tls_cert)
    return sim


@pytest.mark.parametrize("engine", ENGINES)
def test_wss_connects_through_tls_and_an_untrusted_certificate_is_fatal(engine, monkeypatch):
    sim = _tls_sim(monkeypatch)
    try:

        async def body():
            client = Client(ClientConfig(url=sim.ws_url, heartbeat="deribit", transport=engine))
            await client.connect()
            try:
                return await client.request("public/get_time")
            finally:
                await client.close()

        assert sim.ws_url.startswith("wss://") and isinstance(run(body()), int)
        monkeypatch.setenv("SSL_CERT_FILE", os.devnull)

        async def untrusting():
            client = Client(ClientConfig(url=sim.ws_url, heartbeat="none", transport=engine))
            with pytest.raises(ConnectFailed) as info:
                await client.connect()
            return info.value

        error = run(untrusting())
        assert error.fatal and "certificate" in str(error).lower()
    finally:
        sim.stop()
