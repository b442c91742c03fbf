"""Subscriptions against the simulator: what the server confirmed, what it refused, unsubscribing."""

from __future__ import annotations

from client.clientkit import BOOK, Events, call, config, hooks, run, until

from feeder.client import Client, Hooks
from feeder.errors import UsageError

UNKNOWN = "book.NOPE-PERPETUAL.100ms"
RAW = "book.BTC-PERPETUAL.raw"


def test_channels_left_out_of_the_result_are_reported_refused(sim):
    async def body():
        events = Events()
        client = Client(config(sim), on_event=events, hooks=hooks())
        await client.connect()
        try:
            result = await client.subscribe([BOOK, UNKNOWN])
            return result, events.named("subscription_refused"), client.subscriptions, client.metrics()
        finally:
            await client.close()

    (confirmed, refused), refused_events, wanted, metrics = run(body())
    assert confirmed == [BOOK] and list(refused) == [UNKNOWN]
    assert refused_events[0].data["refused"] == refused
    assert wanted == [BOOK] and metrics["refused_subscriptions"] == 1


def test_an_exchange_error_refuses_the_whole_request_with_its_code(sim):
    async def body():
        client = Client(config(sim), hooks=Hooks(subscribe_method="public/subscribe"))
        await client.connect()
        try:
            return await client.subscribe([BOOK, RAW])
        finally:
            await client.close()

    confirmed, refused = run(body())
    assert confirmed == [] and set(refused) == {BOOK, RAW}
    assert "13778" in refused[RAW]


def test_refused_channels_are_not_restored_after_a_reconnect(sim):
    async def body():
        events = Events()
        client = Client(config(sim), on_event=events, hooks=hooks())
        await client.connect()
        try:
            await client.subscribe([BOOK, UNKNOWN])
            await call(sim.disconnect, how="reset")
            await events.wait("connected", 2)
            await until(lambda: sim.connections()[0]["subscriptions"] == [BOOK], "the restore")
            return await call(sim.received)
        finally:
            await client.close()

    received = run(body())
    restore = [m for m in received if m.message.get("method") == "public/subscribe"][-1]
    assert restore.message["params"]["channels"] == [BOOK]


def test_unsubscribed_channels_stop_flowing_and_are_not_restored(sim):
    async def body():
        client = Client(config(sim), hooks=hooks())
        await client.connect()
        try:
            await client.subscribe([BOOK])
            removed = await client.unsubscribe([BOOK])
            return removed, client.subscriptions, await call(sim.connections)
        finally:
            await client.close()

    removed, wanted, conns = run(body())
    assert removed == [BOOK] and wanted == [] and conns[0]["subscriptions"] == []


def test_subscribing_without_a_subscribe_method_says_what_to_configure(sim):
    async def body():
        client = Client(config(sim))
        await client.connect()
        try:
            await client.subscribe([BOOK])
        finally:
            await client.close()

    try:
        run(body())
    except UsageError as e:
        assert "Hooks(subscribe_method=" in str(e)
    else:
        raise AssertionError("subscribe without a method did not fail")
