"""Heartbeats against the simulator: test_request answered, stalls and silent links replaced, pings."""

from __future__ import annotations

from client.clientkit import Events, call, config, only_conn, run, until

from feeder.client import Client


def test_set_heartbeat_is_sent_after_connect_and_test_requests_are_answered(sim):
    async def body():
        client = Client(config(sim, heartbeat_interval=1.0))
        await client.connect()
        try:
            await call(sim.wait_sent, {"method": "public/test"}, 15.0)
            await call(sim.wait_sent, {"method": "public/test"}, 15.0, None, 4)
            return client.heartbeat_health(), await call(sim.stats)
        finally:
            await client.close()

    health, stats = run(body())
    assert sim.wait_sent({"method": "public/set_heartbeat", "params": {"interval": 1}}, 1.0)
    assert health["server_heartbeats"] >= 1 and health["answers_sent"] >= 1 and health["last_answered"] > 0
    assert stats["counters"].get("heartbeat_closes", 0) == 0


def test_a_stalled_connection_is_detected_and_replaced(sim):
    async def body():
        events = Events()
        client = Client(config(sim, heartbeat_interval=1.0), on_event=events)
        await client.connect()
        try:
            stalled = await call(only_conn, sim)
            await call(sim.fault, "stall", conn=stalled)
            dead = await events.wait("heartbeat_dead")
            await events.wait("connected", 2)
            return stalled, dead[0].data, await call(only_conn, sim), client.heartbeat_health()
        finally:
            await client.close()

    stalled, dead, replacement, health = run(body())
    # the silence probe (1.75 s) or Deribit's own rule (2 intervals, 2 s), whichever looks first
    assert ("no frame for" in dead["reason"] or "no message for" in dead["reason"]) and dead[
        "verdict"
    ] == "dead"
    assert replacement != stalled and health["misses_total"] >= 1


def test_missing_server_heartbeats_replace_the_connection(sim):
    async def body():
        events = Events()
        client = Client(config(sim, heartbeat_interval=1.0), on_event=events)
        await client.connect()
        try:
            await call(sim.fault, "drop_test_request", count=3)
            await events.wait("heartbeat_dead")
            await events.wait("connected", 2)
            return events.named("disconnected")[0].data
        finally:
            await client.close()

    disconnected = run(body())
    assert "heartbeat" in disconnected["reason"] and disconnected["category"] == "recoverable"


def test_a_late_test_request_within_the_limit_keeps_the_connection(sim):
    async def body():
        events = Events()
        client = Client(config(sim, heartbeat_interval=1.0), on_event=events)
        await client.connect()
        try:
            await call(sim.fault, "delay_test_request", seconds=0.3, count=1)
            await call(sim.wait_sent, {"method": "public/test"}, 15.0, None, 1)
            await call(sim.wait_sent, {"method": "public/test"}, 15.0, None, 3)
            return events.named("heartbeat_dead"), client.metrics()["connects"]
        finally:
            await client.close()

    dead, connects = run(body())
    assert dead == [] and connects == 1


def test_ping_pong_measures_round_trips_from_matching_pongs(sim):
    async def body():
        client = Client(config(sim, heartbeat="ping_pong", heartbeat_interval=0.5))
        await client.connect()
        try:
            await until(lambda: client.heartbeat_health()["pongs"] >= 3, "three pongs")
            return client.heartbeat_health()
        finally:
            await client.close()

    health = run(body())
    assert health["kind"] == "ping_pong" and health["misses"] == 0
    assert health["rtt"] is not None and health["rtt"] > 0
    assert health["pings_sent"] + health["probes_sent"] >= health["pongs"] >= 3 and health["pings_sent"] >= 1


def test_binance_kind_probes_a_silent_link_and_keeps_it_while_pongs_come_back(sim):
    async def body():
        client = Client(config(sim, heartbeat="binance", heartbeat_interval=0.5))
        await client.connect()
        try:
            await until(lambda: client.heartbeat_health()["pongs"] >= 3, "three answered probes")
            return client.heartbeat_health(), client.metrics()["connects"]
        finally:
            await client.close()

    health, connects = run(body())
    assert health["kind"] == "binance" and health["misses_total"] == 0 and connects == 1
