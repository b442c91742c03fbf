"""Rate-limit arithmetic, cost functions, the FIFO admission queue and pressure levels."""

from __future__ import annotations

import pytest

from feeder.core.ratelimit import Limiter, TokenBucket, cost_function, flat, pressure, refill, table, wait_for
from feeder.errors import ConfigError, RateLimited, UsageError


def test_refill_adds_rate_times_elapsed_and_stops_at_capacity():
    assert refill(0.0, 10.0, 10.5, capacity=100.0, rate=20.0) == 10.0
    assert refill(95.0, 10.0, 20.0, capacity=100.0, rate=20.0) == 100.0


def test_time_going_backwards_adds_nothing():
    assert refill(5.0, 10.0, 9.0, capacity=100.0, rate=20.0) == 5.0


def test_wait_for_is_the_shortfall_over_the_rate():
    assert wait_for(3.0, 5.0, 4.0) == 0.5
    assert wait_for(5.0, 5.0, 4.0) == 0.0


def test_bucket_takes_while_it_can_then_says_how_long_to_wait():
    b = TokenBucket.full(capacity=50_000, refill_per_s=10_000, now=0.0)
    taken = sum(1 for _ in range(200) if b.take_or_wait(500, 0.0) == 0.0)
    assert taken == 100  # Deribit's non-matching-engine burst
    assert b.take_or_wait(500, 0.0) == pytest.approx(0.05)
    assert b.take_or_wait(500, 0.05) == 0.0


def test_forced_takes_go_into_debt_and_delay_the_next_request():
    b = TokenBucket.full(capacity=10, refill_per_s=10, now=0.0)
    b.force_take(15, 0.0)
    assert b.level(0.0) == -5
    assert b.take_or_wait(1, 0.0) == pytest.approx(0.6)


def test_drain_empties_and_reports_time_to_full():
    b = TokenBucket.full(capacity=50_000, refill_per_s=10_000, now=0.0)
    assert b.drain(0.0) == pytest.approx(5.0)
    assert b.level(0.0) == 0.0


def test_flat_cost_is_the_same_for_every_method():
    cost = flat(2.0)
    assert cost("a") == cost("private/buy") == 2.0


def test_table_prefers_exact_names_then_the_longest_pattern_then_the_default():
    credits = table({"private/buy": 1000, "private/*": 700, "private/get_*": 300}, default=500)
    assert credits("private/buy") == 1000
    assert credits("private/get_positions") == 300
    assert credits("private/cancel") == 700
    assert credits("public/ticker") == 500


def test_binance_style_weights_are_an_exact_table():
    weights = cost_function({"depth": 10, "ticker/24hr": 40, "*": 1})
    assert (weights("depth"), weights("ticker/24hr"), weights("time")) == (10, 40, 1)


def test_cost_spec_accepts_a_callable_and_a_number():
    assert cost_function(lambda m: len(m))("abc") == 3
    assert cost_function(3)("x") == 3.0


@pytest.mark.parametrize("bad", ["cheap", -1, None, True])
def test_cost_spec_rejects_anything_else_naming_the_field(bad):
    with pytest.raises(ConfigError, match=r"rate_limit\.cost"):
        cost_function(bad, "rate_limit.cost")


@pytest.mark.parametrize(
    ("queued", "level"), [(0, "none"), (1, "low"), (25, "low"), (26, "medium"), (75, "medium"), (76, "high")]
)
def test_pressure_levels_follow_queue_fill(queued, level):
    assert pressure(queued, 100) == level


def _limiter(capacity=2.0, rate=1.0, max_queue=3):
    return Limiter(TokenBucket.full(capacity, rate, 0.0), flat(1.0), max_queue)


def test_requests_go_at_once_while_credits_last():
    lim = _limiter()
    assert lim.admit("a", 0.0) is None
    assert lim.admit("b", 0.0) is None
    assert lim.admit("c", 0.0) is not None


def test_queue_releases_in_arrival_order_as_credits_refill():
    lim = _limiter()
    lim.admit("a", 0.0)
    lim.admit("b", 0.0)
    waiting = [lim.admit(m, 0.0) for m in ("private/buy", "public/get_time", "private/cancel")]
    ready, wait = lim.release(0.0)
    assert ready == [] and wait == pytest.approx(1.0)
    ready, _ = lim.release(2.0)
    assert [w.method for w in ready] == ["private/buy", "public/get_time"]
    ready, wait = lim.release(3.0)
    assert [w.method for w in ready] == ["private/cancel"] and wait == 0.0
    assert waiting[0].method == "private/buy"


def test_a_later_request_never_overtakes_a_waiting_one_even_if_it_could_afford_to():
    lim = Limiter(TokenBucket.full(10.0, 1.0, 0.0), cost_function({"private/buy": 10, "*": 1}), 10)
    lim.admit("private/get_x", 0.0)  # 9 left
    assert lim.admit("private/buy", 0.0) is not None  # needs 10: waits
    assert lim.admit("public/cheap", 0.0) is not None  # 9 credits are there, but it queues behind
    ready, _ = lim.release(1.0)
    assert [w.method for w in ready] == ["private/buy"]


def test_a_full_queue_rejects_with_a_clear_error():
    lim = _limiter(max_queue=1)
    lim.admit("a", 0.0)
    lim.admit("b", 0.0)
    lim.admit("c", 0.0)
    with pytest.raises(RateLimited, match=r"queue full .* not sent"):
        lim.admit("d", 0.0)
    assert lim.rejected == 1


def test_a_request_costing_more_than_the_bucket_holds_is_refused_not_queued_forever():
    lim = Limiter(TokenBucket.full(5.0, 1.0, 0.0), flat(6.0), 10)
    with pytest.raises(RateLimited, match="costs 6 credits but bucket 'default' holds at most 5"):
        lim.admit("huge", 0.0)


def test_withdrawn_entries_leave_the_queue():
    lim = _limiter()
    lim.admit("a", 0.0)
    lim.admit("b", 0.0)
    entry = lim.admit("c", 0.0)
    lim.withdraw(entry)
    assert lim.pressure() == "none"


def test_stats_report_pressure_and_credits():
    lim = _limiter(max_queue=4)
    for m in "abc":
        lim.admit(m, 0.0)
    stats = lim.stats(0.0)
    assert (stats["pressure"], stats["queued"], stats["credits"], stats["admitted"]) == (
        "low",
        1,
        {"default": 0.0},
        2,
    )


def test_a_reserve_is_kept_back_from_queued_requests_for_replies_that_cannot_wait():
    bucket = TokenBucket.full(10.0, 1.0, 0.0)
    lim = Limiter(bucket, flat(5.0), 10, reserve={"default": 2.0})
    assert lim.admit("a", 0.0) is None  # 10 -> 5
    assert lim.admit("b", 0.0) is not None  # 5 < 5 + 2: waits
    bucket.force_take(2.0, 0.0)  # the heartbeat answer still finds its credits
    assert bucket.level(0.0) == 3.0


def test_a_reserve_too_large_for_the_bucket_is_refused_with_the_reason():
    lim = Limiter(TokenBucket.full(10.0, 1.0, 0.0), flat(9.0), 10, reserve={"default": 2.0})
    with pytest.raises(RateLimited, match=r"\+2 kept in reserve"):
        lim.admit("a", 0.0)


def _two_classes() -> Limiter:
    buckets = {"default": TokenBucket.full(10.0, 10.0, 0.0), "matching": TokenBucket.full(2.0, 1.0, 0.0)}
    cost = cost_function({"private/buy": ("matching", 1.0), "*": 1.0})
    return Limiter(buckets, cost, 10)


def test_classes_of_requests_draw_from_their_own_buckets():
    lim = _two_classes()
    assert [lim.admit("private/buy", 0.0) is None for _ in range(3)] == [True, True, False]
    assert lim.stats(0.0)["credits"] == {"default": 10.0, "matching": 0.0}


def test_order_is_kept_across_buckets():
    lim = _two_classes()
    lim.admit("private/buy", 0.0)
    lim.admit("private/buy", 0.0)
    lim.admit("private/buy", 0.0)  # matching is empty: waits
    assert lim.admit("public/get_time", 0.0) is not None  # default has credits, but queues behind
    ready, wait = lim.release(0.5)
    assert ready == [] and wait == pytest.approx(0.5)
    ready, _ = lim.release(1.0)
    assert [w.method for w in ready] == ["private/buy", "public/get_time"]


def test_drain_empties_every_bucket_and_waits_for_the_default_one_only():
    lim = _two_classes()
    assert lim.drain(0.0) == pytest.approx(1.0)  # default: 10 credits at 10/s; matching would take 2 s
    assert lim.admit("private/buy", 0.5) is not None  # matching is still empty: the order waits


def test_a_cost_function_naming_an_unknown_bucket_says_which_exist():
    lim = Limiter(TokenBucket.full(10.0, 1.0, 0.0), lambda m: ("matching", 1.0), 10)
    with pytest.raises(UsageError, match="bucket 'matching'; configured buckets: default"):
        lim.admit("private/buy", 0.0)
