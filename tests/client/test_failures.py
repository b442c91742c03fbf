"""Fatal errors stop the retries with an explanation; recoverable ones are retried with backoff."""

from __future__ import annotations

import pytest
from client.clientkit import Events, auth_with, call, config, hooks, run

from feeder.client import Client, ConnState, explain
from feeder.errors import ConnectFailed


def _connect_fails(client: Client) -> ConnectFailed:
    async def body():
        with pytest.raises(ConnectFailed) as info:
            await client.connect()
        return info.value

    return run(body())


def test_bad_credentials_stop_the_retries_and_say_what_to_check(sim):
    events = Events()
    client = Client(config(sim), on_event=events, hooks=hooks(on_connected=auth_with("client-id", "wrong")))
    error = _connect_fails(client)
    assert error.fatal and "13004" in str(error) and "API key" in error.advice
    assert client.state is ConnState.CLOSED
    assert events.named("gave_up")[0].data["fatal"] is True and events.named("reconnecting") == []
    assert sim.stats()["counters"]["connections_total"] == 1
    assert explain(error).fatal


def test_a_rejected_handshake_is_fatal(sim):
    client = Client(config(sim, url=sim.ws_url.replace("/ws/api/v2", "/no/such/path")))
    error = _connect_fails(client)
    assert error.fatal and "HTTP 4" in str(error)


def test_a_setup_request_the_exchange_refuses_is_fatal_and_named(sim):
    client = Client(config(sim, heartbeat_interval=0.5))
    error = _connect_fails(client)
    assert error.fatal and "public/set_heartbeat" in str(error) and "-32602" in str(error)


def test_retries_stop_after_max_retries_with_the_last_reason(sim):
    events = Events()
    client = Client(config(sim, max_retries=2), on_event=events)

    async def body():
        await client.connect()
        await call(sim.fault, "refuse", seconds=60, how="refuse")
        await call(sim.disconnect, how="reset")
        await events.wait("gave_up")
        return client.state

    assert run(body()) is ConnState.CLOSED
    gave_up = events.named("gave_up")[0].data
    assert gave_up["fatal"] is False and "after 2 retries" in gave_up["advice"]
    assert len(events.named("reconnecting")) == 2


def test_a_server_that_turns_connections_away_with_429_is_waited_out(sim):
    events = Events()
    client = Client(config(sim, max_backoff=1.0), on_event=events)

    async def body():
        await call(sim.fault, "refuse", seconds=0.5, how="429")
        await client.connect()
        await client.close()

    run(body())
    first = events.named("reconnecting")[0].data
    assert "rate_limited" in first["reason"] and first["delay"] >= 1.0
    assert sim.stats()["counters"]["refused_429"] >= 1
