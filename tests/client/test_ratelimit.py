"""The client's rate limiter against the simulator's credit limits (Deribit's: 500 credits a request,
50 000 burst, 10 000/s refill): queueing, pressure, order, rejection, and no 10028 when set right."""

from __future__ import annotations

import asyncio

import pytest
from client.clientkit import BOOK, CREDENTIALS, INSTRUMENT, Events, Notes, auth_with, call, config, hooks, run

from feeder.client import Client, ConnState, RateLimit
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


# --- the exchange asks us to slow down: with the request's id, a null id, or no close at all ---------

REFILL = RateLimit(capacity=5_000, refill_per_s=10_000, cost=500)  # full again 0.5 s after a drain


async def _rate_limited_and_back(sim, events: Events, notes: Notes, fault: dict, **overrides):
    """Subscribe, make the next request meet the `rate_limit` fault, wait until the books flow again."""
    settings = {"rate_limit": REFILL, "heartbeat": "none", **overrides}
    client = Client(config(sim, **settings), on_notification=notes, on_event=events, hooks=hooks())
    await client.connect()
    try:
        await client.subscribe([BOOK])
        await call(sim.fault, "rate_limit", **fault)
        (outcome,) = await asyncio.gather(client.request("public/get_time"), return_exceptions=True)
        await events.wait("subscribed", 2, timeout=60)
        await notes.flowing(sim, BOOK, INSTRUMENT)
        return outcome, client.metrics(), client.state
    finally:
        await client.close()


@pytest.mark.parametrize("answer_id", ["request", "null"])
def test_10028_with_the_request_id_or_a_null_id_drains_waits_the_refill_and_resubscribes(sim, answer_id):
    events, notes = Events(), Notes()
    outcome, metrics, state = run(_rate_limited_and_back(sim, events, notes, {"id": answer_id}))
    if answer_id == "request":
        assert isinstance(outcome, ExchangeError) and outcome.code == 10028
    else:  # nothing names the request: it fails with the connection, as one that may have reached it
        assert isinstance(outcome, ConnectionLost) and outcome.sent
    assert metrics["rate_limit_events"] == {"10028": 1}
    assert metrics["unmatched_answers"] == 0 and metrics["errors_without_id"] == {}
    assert "unmatched_answer" not in metrics["bad_input"] and "error_without_id" not in metrics["bad_input"]
    (slowed,) = events.named("rate_limited")
    assert slowed.data["code"] == 10028 and slowed.data["refill_s"] == pytest.approx(0.5)
    assert slowed.data["method"] == ("public/get_time" if answer_id == "request" else None)
    assert events.named("disconnected")[0].data["category"] == "rate_limited"
    (reconnecting,) = events.named("reconnecting")
    assert "rate_limited" in reconnecting.data["reason"]
    assert 0.5 + 0.05 <= reconnecting.data["delay"] <= (0.5 + 0.05) * 1.2  # refill + backoff, jittered up
    back = events.named("connected")[1]
    assert back.time_ns - slowed.time_ns >= 0.5e9  # it did wait for the refill
    assert state is ConnState.CONNECTED and metrics["connects"] == 2 and metrics["subscriptions"] == 1


def test_a_reconnect_refused_after_10028_is_counted_and_retried_until_the_window_ends(sim):
    events, notes = Events(), Notes()
    fault = {"id": "null", "refuse_s": 3.0}
    outcome, metrics, state = run(
        _rate_limited_and_back(sim, events, notes, fault, jitter=0.0, max_backoff=5.0)
    )
    refused_429 = sim.stats()["counters"]["refused_429"]
    assert isinstance(outcome, ConnectionLost)
    assert metrics["refused_connects"] >= 1 and metrics["refused_connects"] == refused_429
    delays = [e.data["delay"] for e in events.named("reconnecting")]
    assert len(delays) == refused_429 + 1
    assert delays == sorted(set(delays)) and delays[0] == pytest.approx(0.55)  # longer after each refusal
    assert all("HTTP 429" in e.data["reason"] for e in events.named("reconnecting")[1:])
    assert events.named("gave_up") == [] and len(events.named("connected")) == 2
    assert state is ConnState.CONNECTED and metrics["rate_limit_events"] == {"10028": 1}


def test_an_overload_answer_with_a_null_id_slows_the_requests_without_a_reconnect_nor_a_later_wait(sim):
    overload = {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": 10047, "message": "matching_engine_queue_full"},
    }

    async def body():
        events = Events()
        client = Client(config(sim, rate_limit=REFILL, heartbeat="none"), on_event=events)
        await client.connect()
        try:
            await call(sim.inject, overload)
            await events.wait("rate_limited")
            result, metrics = await client.request("public/get_time"), client.metrics()
            await asyncio.sleep(1.2)  # the credits refilled (0.5 s; at least 1 s): the answer is history
            await call(sim.fault, "drop", how="reset")
            await events.wait("disconnected")
            return result, metrics, events
        finally:
            await client.close()

    result, metrics, events = run(body())
    assert isinstance(result, int) and metrics["rate_limit_events"] == {"10047": 1}
    assert events.named("rate_limited")[0].data["refill_s"] == pytest.approx(0.5)
    assert metrics["connects"] == 1 and metrics["unmatched_answers"] == 0 and metrics["bad_input"] == {}
    # a drop long after the overload answer is an ordinary one, not a wait for credits
    assert events.named("disconnected")[0].data["category"] == "recoverable"
