"""Request correlation against the simulator: results, exchange errors, timeouts, connection loss."""

from __future__ import annotations

import asyncio

import pytest
from client.clientkit import Events, call, config, run, until

from feeder.client import Client, RateLimit
from feeder.errors import ClientClosed, ConnectionLost, ExchangeError, RequestTimeout


def test_an_exchange_error_carries_code_message_and_data(sim):
    async def body():
        client = Client(config(sim, heartbeat="none"))
        await client.connect()
        try:
            with pytest.raises(ExchangeError) as info:
                await client.request("public/subscribe", {"channels": "not-a-list"})
            return info.value
        finally:
            await client.close()

    error = run(body())
    assert error.code == -32602 and error.method == "public/subscribe" and error.data["param"] == "channels"


def test_a_request_without_an_answer_times_out_on_its_own_deadline(sim):
    async def body():
        client = Client(config(sim, heartbeat="none"))
        await client.connect()
        try:
            await call(sim.fault, "stall")
            with pytest.raises(RequestTimeout) as info:
                await client.request("public/get_time", timeout=0.3)
            await call(sim.fault, "resume")
            return info.value, await client.request("public/get_time"), client.metrics()
        finally:
            await client.close()

    error, later, metrics = run(body())
    assert "may have reached the exchange" in str(error) and error.timeout == 0.3
    assert isinstance(later, int) and metrics["request_timeouts"] == 1 and metrics["pending_requests"] == 0


def test_every_pending_request_fails_at_once_when_the_connection_drops_saying_it_was_sent(sim):
    async def body():
        events = Events()
        client = Client(config(sim, heartbeat="none", request_timeout=600.0), on_event=events)
        await client.connect()
        try:
            await call(sim.fault, "stall")
            pending = [asyncio.create_task(client.request("private/buy", {"amount": 10})) for _ in range(5)]
            await until(lambda: client.metrics()["pending_requests"] == 5, "five pending requests")
            await call(sim.disconnect, how="reset")
            return await asyncio.gather(*pending, return_exceptions=True), client.metrics()[
                "pending_requests"
            ]
        finally:
            await client.close()

    errors, pending_after = run(body())
    assert all(isinstance(e, ConnectionLost) and e.sent and e.method == "private/buy" for e in errors)
    assert "may have reached the exchange" in str(errors[0]) and pending_after == 0


def test_requests_still_queued_when_the_client_gives_up_fail_as_never_sent(sim):
    limit = RateLimit(capacity=500, refill_per_s=10, cost=500)

    async def body():
        client = Client(config(sim, heartbeat="none", reconnect_on_error=False, rate_limit=limit))
        await client.connect()
        try:
            first = await client.request("public/get_time")
            queued = [asyncio.create_task(client.request("private/sell", timeout=600.0)) for _ in range(3)]
            await until(lambda: client.metrics()["limiter"]["queued"] == 3, "three queued requests")
            await call(sim.disconnect, how="reset")
            return first, await asyncio.gather(*queued, return_exceptions=True)
        finally:
            await client.close()

    first, errors = run(body())
    assert isinstance(first, int)
    assert all(isinstance(e, ConnectionLost) and not e.sent for e in errors), errors
    assert "was never sent" in str(errors[0])


def test_a_request_on_a_closed_client_is_a_usage_error(sim):
    async def body():
        client = Client(config(sim))
        with pytest.raises(ClientClosed, match="call connect"):
            await client.request("public/get_time")

    run(body())


def test_a_late_or_unknown_answer_is_counted_not_raised(sim):
    async def body():
        client = Client(config(sim, heartbeat="none"))
        await client.connect()
        try:
            await call(sim.inject, {"jsonrpc": "2.0", "id": 424242, "result": 1})
            await until(lambda: client.metrics()["unmatched_answers"] == 1, "the unmatched answer")
            return await client.request("public/get_time")
        finally:
            await client.close()

    assert isinstance(run(body()), int)
