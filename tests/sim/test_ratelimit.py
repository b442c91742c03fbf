"""Credit-based rate limits: the bucket arithmetic, and 10028-then-disconnect on a socket."""

from __future__ import annotations

import pytest
from sim.conftest import BTC
from sim.kit import Rpc
from websockets.exceptions import ConnectionClosed

from feeder.sim import SimServer
from feeder.sim.ratelimit import Bucket, Limiter


def test_bucket_spends_refills_and_caps():
    bucket = Bucket(capacity=1000, refill=100, credits=1000, at=0.0)
    assert all(bucket.take(500, 0.0) for _ in range(2))
    assert not bucket.take(500, 0.0)
    assert not bucket.take(500, 4.9)
    assert bucket.take(500, 5.0)
    assert bucket.take(500, 100.0) and bucket.take(500, 100.0) and not bucket.take(500, 100.0)


def test_default_bucket_allows_a_burst_of_100_then_20_per_second():
    limiter = Limiter()
    assert sum(limiter.allow("k", "default", 0.0) for _ in range(150)) == 100
    assert sum(limiter.allow("k", "default", 1.0) for _ in range(50)) == 20


def test_buckets_are_per_key_and_per_kind():
    limiter = Limiter()
    assert sum(limiter.allow("a", "matching", 0.0) for _ in range(30)) == 20
    assert limiter.allow("b", "matching", 0.0) and limiter.allow("a", "default", 0.0)
    assert sum(limiter.allow("a", "instruments", 0.0) for _ in range(10)) == 5


def _burst(client: Rpc, n: int) -> list[dict]:
    ids = [client.send("public/get_time", {}) for _ in range(n)]
    answers = []
    try:
        while len(answers) < len(ids):
            answers.append(client.recv())
    except ConnectionClosed:
        pass
    return answers


def test_running_out_of_credits_answers_10028_and_disconnects(sim, connect):
    answers = _burst(connect(), 130)
    assert all("result" in a for a in answers[:100])
    assert answers[100]["error"] == {
        "message": "too_many_requests",
        "code": 10028,
        "data": answers[100]["error"]["data"],
    }
    assert len(answers) == 101, "nothing is answered after 10028: the connection is closed"
    assert sim.stats()["counters"]["rate_limited"] == 1


def test_rate_limits_can_be_switched_off():
    with SimServer(instruments=[BTC], rate=0, rate_limits=False) as sim:
        client = Rpc(sim.ws_url)
        try:
            answers = _burst(client, 300)
        finally:
            client.close()
    assert len(answers) == 300 and all("result" in a for a in answers)


def test_subscribe_has_its_own_smaller_bucket(connect):
    client = connect()
    results = [client.call("public/subscribe", {"channels": [f"book.{BTC}.100ms"]}) for _ in range(10)]
    assert all("result" in r for r in results)
    with pytest.raises(ConnectionClosed):
        assert client.call("public/subscribe", {"channels": []})["error"]["code"] == 10028
        client.recv()
