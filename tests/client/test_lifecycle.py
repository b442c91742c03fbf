"""Connecting, requests, closing, and reconnecting after drops, against the simulator."""

from __future__ import annotations

import asyncio

import pytest
from client.clientkit import BOOK, Events, Notes, call, config, hooks, only_conn, run, until

from feeder.client import Client, ConnState, Setup
from feeder.errors import ConnectionLost


def test_connect_request_and_close_walk_through_the_states(sim):
    async def body():
        events = Events()
        client = Client(config(sim), on_event=events)
        assert client.state is ConnState.IDLE
        await client.connect()
        assert client.state is ConnState.CONNECTED
        assert isinstance(await client.request("public/get_time"), int)
        await client.close()
        assert client.state is ConnState.CLOSED
        return [(e.data["from"], e.data["to"]) for e in events.named("state")]

    assert run(body()) == [
        ("idle", "connecting"),
        ("connecting", "setting_up"),
        ("setting_up", "restoring"),
        ("restoring", "connected"),
        ("connected", "closing"),
        ("closing", "closed"),
    ]


def test_request_latency_and_traffic_are_measured(sim):
    async def body():
        client = Client(config(sim))
        await client.connect()
        try:
            for _ in range(5):
                await client.request("public/get_time")
            return client.latency_stats(), client.metrics()
        finally:
            await client.close()

    latency, metrics = run(body())
    assert latency["count"] >= 6  # set_heartbeat + 5
    assert 0 < latency["p50"] <= latency["p99"] <= latency["max"]
    assert metrics["frames_out"] >= 6 and metrics["frames_in"] >= 6 and metrics["bytes_in"] > 0
    assert metrics["pending_requests"] == 0 and metrics["connects"] == 1


def test_notifications_reach_the_handler_with_a_wall_clock_receive_time(sim):
    async def body():
        notes = Notes()
        client = Client(config(sim), on_notification=notes, hooks=hooks())
        await client.connect()
        try:
            await client.subscribe([BOOK])
            last = (await call(sim.publish, 5))["last"]["BTC-PERPETUAL"]
            await until(lambda: notes.has_change(BOOK, last), "the change")
            return notes, await call(sim.sent, BOOK)
        finally:
            await client.close()

    notes, sent = run(body())
    change_ids = [m["params"]["data"]["change_id"] for m in notes.on(BOOK)]
    assert change_ids == sorted(change_ids)
    send_ns = {row[0]: row[2] for row in sent}
    received = [
        (m["params"]["data"]["change_id"], ns) for m, ns in zip(notes.messages, notes.recv_ns, strict=True)
    ]
    assert any(cid in send_ns for cid, _ in received)
    assert all(ns >= send_ns[cid] for cid, ns in received if cid in send_ns)


def test_abrupt_drop_reconnects_with_backoff_and_restores_subscriptions(sim):
    async def body():
        events, notes = Events(), Notes()
        client = Client(config(sim), on_notification=notes, on_event=events, hooks=hooks())
        await client.connect()
        try:
            await client.subscribe([BOOK])
            first = await call(only_conn, sim)
            await call(sim.disconnect, conn=first, how="reset")
            await events.wait("connected", 2)
            await until(
                lambda: sim.connections() and sim.connections()[0]["subscriptions"] == [BOOK], "restore"
            )
            last = (await call(sim.publish, 3))["last"]["BTC-PERPETUAL"]
            await until(lambda: notes.has_change(BOOK, last), "notifications after the restore")
            return events, client.metrics()
        finally:
            await client.close()

    events, metrics = run(body())
    reconnecting = events.named("reconnecting")
    assert len(reconnecting) == 1 and reconnecting[0].data["delay"] > 0
    assert metrics["reconnects"] == 1 and metrics["connects"] == 2 and metrics["subscriptions"] == 1
    assert events.named("disconnected")[0].data["category"] == "recoverable"


def test_clean_close_by_the_server_also_reconnects_and_restores(sim):
    async def body():
        events = Events()
        client = Client(config(sim), on_event=events, hooks=hooks())
        await client.connect()
        try:
            await client.subscribe([BOOK])
            await call(sim.disconnect, how="close", code=1000, reason="maintenance")
            await events.wait("connected", 2)
            return await call(
                sim.wait_sent, {"method": "public/subscribe", "params": {"channels": [BOOK]}}, 10.0, None, 2
            )
        finally:
            await client.close()

    resubscribe = run(body())
    assert resubscribe.message["params"]["channels"] == [BOOK]
    assert (
        len({m.conn for m in sim.received() if m.message and m.message.get("method") == "public/subscribe"})
        == 2
    )


def test_backoff_grows_while_the_server_refuses_connections(sim):
    async def body():
        events = Events()
        client = Client(config(sim, initial_delay=0.05, max_backoff=5.0, jitter=0.0), on_event=events)
        await client.connect()
        try:
            await call(sim.fault, "refuse", seconds=1.5, how="refuse")
            await call(sim.disconnect, how="reset")
            await events.wait("connected", 2, timeout=60)
            return [e.data["delay"] for e in events.named("reconnecting")]
        finally:
            await client.close()

    delays = run(body())
    assert len(delays) >= 3
    assert delays == sorted(delays) and delays[1] == 2 * delays[0]


def test_reconnect_replaces_the_connection_on_demand(sim):
    async def body():
        events = Events()
        client = Client(config(sim), on_event=events)
        await client.connect()
        try:
            first = await call(only_conn, sim)
            await client.reconnect()
            second = await call(only_conn, sim)
            return first, second, client.state, events.named("reconnecting")[0].data["delay"]
        finally:
            await client.close()

    first, second, state, delay = run(body())
    assert first != second and state is ConnState.CONNECTED and delay == 0.0


def test_on_connected_runs_before_restore_and_on_disconnected_once_per_loss(sim):
    calls: list[str] = []

    async def on_connected(setup: Setup) -> None:
        calls.append("connected")
        await setup.request(
            "public/auth",
            {"grant_type": "client_credentials", "client_id": "client-id", "client_secret": "client-secret"},
        )

    async def body():
        events = Events()
        private = "user.orders.BTC-PERPETUAL.raw"
        client = Client(
            config(sim),
            on_event=events,
            hooks=hooks(on_connected=on_connected, on_disconnected=lambda: calls.append("disconnected")),
        )
        await client.connect()
        try:
            confirmed, refused = await client.subscribe([private, BOOK])
            await call(sim.disconnect, how="reset")
            await events.wait("connected", 2)
            await until(lambda: len(sim.connections()[0]["subscriptions"]) == 2, "both channels restored")
            return confirmed, refused, await call(sim.received)
        finally:
            await client.close()

    confirmed, refused, received = run(body())
    assert sorted(confirmed) == sorted(["user.orders.BTC-PERPETUAL.raw", BOOK]) and refused == {}
    second_conn = received[-1].conn
    methods = [m.message["method"] for m in received if m.conn == second_conn and m.message]
    assert methods.index("public/auth") < methods.index("private/subscribe")
    assert calls == ["connected", "disconnected", "connected", "disconnected"]


def test_requests_made_while_reconnecting_wait_for_the_new_connection(sim):
    async def body():
        events = Events()
        client = Client(config(sim, initial_delay=0.3, max_backoff=0.3), on_event=events)
        await client.connect()
        try:
            await call(sim.disconnect, how="reset")
            await events.wait("reconnecting")
            return await client.request("public/get_time")
        finally:
            await client.close()

    assert isinstance(run(body()), int)


def test_close_waits_for_pending_answers_within_its_deadline(sim):
    async def body():
        client = Client(config(sim))
        await client.connect()
        pending = asyncio.create_task(client.request("public/get_time"))
        await asyncio.sleep(0)
        await until(lambda: client.metrics()["pending_requests"] == 1, "the request to be pending")
        await client.close(timeout=5.0)
        return await pending

    assert isinstance(run(body()), int)


def test_a_setup_request_after_its_connection_is_gone_fails_as_not_sent(sim):
    kept: list[Setup] = []

    async def on_connected(setup: Setup) -> None:
        kept.append(setup)

    async def body():
        client = Client(config(sim), hooks=hooks(on_connected=on_connected))
        await client.connect()
        try:
            await call(sim.disconnect, how="reset")
            await until(lambda: len(kept) == 2 and client.state is ConnState.CONNECTED, "the next connection")
            with pytest.raises(ConnectionLost) as info:
                await kept[0].request("public/get_time")
            return info.value, await kept[1].request("public/get_time")
        finally:
            await client.close()

    lost, answer = run(body())
    assert lost.sent is False and "gone" in str(lost) and isinstance(answer, int)


def test_requests_made_during_the_setup_wait_for_it_while_the_hook_s_go_out_at_once(sim):
    release = asyncio.Event()
    order: list[str] = []

    async def on_connected(setup: Setup) -> None:
        order.append(f"hook got {type(await setup.request('public/get_time')).__name__}")
        await release.wait()
        order.append("hook done")

    async def body():
        client = Client(config(sim), hooks=hooks(on_connected=on_connected))
        connecting = asyncio.create_task(client.connect())
        await until(lambda: order, "the hook's own request answered")
        waiting = asyncio.create_task(client.request("public/get_time"))
        await asyncio.sleep(0.2)
        early = waiting.done()
        release.set()
        await connecting
        order.append(f"caller got {type(await waiting).__name__}")
        await client.close()
        return early

    assert run(body()) is False
    assert order == ["hook got int", "hook done", "caller got int"]
