"""The client's rate limiter against the simulator's credit limits (Deribit's: 500 credits a request,
50 000 burst, 10 000/s refill): queueing, pressure, order, rejection, and no 10028 when set right."""

from __future__ import annotations

import asyncio

from client.clientkit import CREDENTIALS, Events, auth_with, call, config, hooks, run

from feeder.client import Client, RateLimit
from feeder.errors import ConnectionLost, ExchangeError, RateLimited

DERIBIT_DEFAULT = RateLimit(capacity=50_000, refill_per_s=10_000, cost=500)


def test_a_burst_beyond_the_exchange_limit_queues_and_is_never_refused(sim):
    async def body():
        events = Events()
        client = Client(config(sim, rate_limit=DERIBIT_DEFAULT), on_event=events)
        await client.connect()
        try:
            results = await asyncio.gather(*(client.request("public/get_time") for _ in range(140)))
            return results, client.metrics()["limiter"], events.named("pressure"), await call(sim.stats)
        finally:
            await client.close()

    results, limiter, pressure, stats = run(body())
    assert all(isinstance(r, int) for r in results)
    assert stats["counters"].get("error_10028", 0) == 0 and stats["counters"].get("rate_limited", 0) == 0
    assert limiter["waited"] >= 30 and limiter["rejected"] == 0
    levels = [e.data["level"] for e in pressure]
    assert levels[0] != "none" and levels[-1] == "none"


def test_without_the_limiter_the_same_burst_gets_10028_and_the_session_is_closed(sim):
    async def body():
        events = Events()
        client = Client(config(sim), on_event=events)
        await client.connect()
        try:
            results = await asyncio.gather(
                *(client.request("public/get_time") for _ in range(140)), return_exceptions=True
            )
            await events.wait("connected", 2)
            return results, events.named("reconnecting")
        finally:
            await client.close()

    results, reconnecting = run(body())
    refused = [r for r in results if isinstance(r, ExchangeError)]
    assert refused and refused[0].code == 10028
    assert any(isinstance(r, ConnectionLost) for r in results) or len(refused) + 100 >= 140
    assert "rate_limited" in reconnecting[0].data["reason"]


def test_requests_leave_the_queue_in_the_order_they_were_made(sim):
    methods = ["public/get_time", "public/hello", "public/test", "public/hello", "public/get_time"] * 4
    limit = RateLimit(capacity=2000, refill_per_s=4000, cost={"public/hello": 2000, "*": 500})

    async def body():
        client = Client(config(sim, heartbeat="none", rate_limit=limit))
        await client.connect()
        try:
            hello = {"client_name": "t", "client_version": "1"}
            await asyncio.gather(
                *(client.request(m, hello if m == "public/hello" else None) for m in methods)
            )
            return [m.message["method"] for m in await call(sim.received)]
        finally:
            await client.close()

    assert run(body()) == methods


def test_a_full_queue_rejects_at_once_and_says_the_request_was_not_sent(sim):
    limit = RateLimit(capacity=1000, refill_per_s=500, cost=500, max_queue=3)

    async def body():
        client = Client(config(sim, heartbeat="none", rate_limit=limit))
        await client.connect()
        try:
            return await asyncio.gather(
                *(client.request("public/get_time") for _ in range(10)), return_exceptions=True
            )
        finally:
            await client.close()

    results = run(body())
    rejected = [r for r in results if isinstance(r, RateLimited)]
    assert len(rejected) == 5 and all("queue full" in str(r) and "not sent" in str(r) for r in rejected)
    assert sum(isinstance(r, int) for r in results) == 5
    assert len(sim.received()) == 5


def test_a_request_still_queued_at_its_timeout_fails_as_not_sent(sim):
    limit = RateLimit(capacity=500, refill_per_s=50, cost=500)

    async def body():
        client = Client(config(sim, heartbeat="none", rate_limit=limit))
        await client.connect()
        try:
            await client.request("public/get_time")
            try:
                await client.request("public/get_time", timeout=0.3)
            except RateLimited as e:
                return e, client.metrics()["limiter"]["queued"]
        finally:
            await client.close()

    error, queued = run(body())
    assert "not sent" in str(error) and queued == 0
    assert len(sim.received()) == 1


def test_two_clients_on_one_account_share_a_bucket_and_stay_within_the_account_limit(sim, tmp_path):
    limit = RateLimit(capacity=50_000, refill_per_s=10_000, cost=500, shared_dir=tmp_path, shared_name="acct")
    ((client_id, secret),) = CREDENTIALS.items()

    async def body():
        clients = [
            Client(config(sim, rate_limit=limit), hooks=hooks(on_connected=auth_with(client_id, secret)))
            for _ in range(2)
        ]
        for c in clients:
            await c.connect()
        try:
            results = await asyncio.gather(
                *(c.request("public/get_time") for c in clients for _ in range(70)), return_exceptions=True
            )
            return results, await call(sim.stats)
        finally:
            for c in clients:
                await c.close()

    results, stats = run(body())
    assert all(isinstance(r, int) for r in results), [r for r in results if not isinstance(r, int)][:3]
    assert stats["counters"].get("error_10028", 0) == 0


def test_after_10028_the_client_waits_for_the_credits_to_refill_before_reconnecting(sim):
    limit = RateLimit(capacity=5_000, refill_per_s=10_000, cost=500)  # full again 0.5 s after a drain

    async def body():
        events = Events()
        client = Client(config(sim, rate_limit=limit, initial_delay=0.01, max_backoff=0.05), on_event=events)
        await client.connect()
        try:
            await call(sim.fault, "rate_limit")
            try:
                await client.request("public/get_time")
            except ExchangeError as e:
                refused = e
            await events.wait("connected", 2)
            return refused, events.named("reconnecting")[0].data
        finally:
            await client.close()

    refused, reconnecting = run(body())
    assert refused.code == 10028
    assert "rate_limited" in reconnecting["reason"] and reconnecting["delay"] >= 0.5


def test_a_bucket_per_request_class_keeps_order_bursts_within_the_matching_engine_limit(sim):
    ((client_id, secret),) = CREDENTIALS.items()
    limit = RateLimit(
        capacity=50_000,
        refill_per_s=10_000,
        cost={"private/cancel": ("matching", 1000), "*": 500},
        # the simulator's lowest tier is 20 orders burst, 5/s; 10 % headroom absorbs the jitter between
        # the client admitting a request and the server receiving it
        buckets={"matching": (18_000, 4_500)},
    )

    async def body():
        client = Client(config(sim, rate_limit=limit), hooks=hooks(on_connected=auth_with(client_id, secret)))
        await client.connect()
        try:
            results = await asyncio.gather(
                *(client.request("private/cancel", {"order_id": f"nope-{i}"}) for i in range(30)),
                return_exceptions=True,
            )
            return results, client.metrics()["limiter"], await call(sim.stats)
        finally:
            await client.close()

    results, limiter, stats = run(body())
    odd = [r for r in results if not (isinstance(r, ExchangeError) and r.code != 10028)]
    assert not odd, odd[:3]
    assert stats["counters"].get("error_10028", 0) == 0 and limiter["waited"] >= 10
