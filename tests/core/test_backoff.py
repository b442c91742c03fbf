"""Reconnect backoff: exponential, capped, jittered, reset after a stable connection, bounded retries."""

from __future__ import annotations

import random

import pytest

from feeder.core.backoff import Backoff


def test_delays_double_up_to_the_cap_without_jitter():
    b = Backoff(initial=0.1, cap=1.0, jitter=0.0)
    rng = random.Random(1)
    assert [round(b.next_delay(rng), 3) for _ in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


def test_jitter_stays_within_the_fraction_and_varies():
    b = Backoff(initial=1.0, cap=1.0, jitter=0.2)
    rng = random.Random(7)
    delays = [b.next_delay(rng) for _ in range(200)]
    assert all(0.8 <= d <= 1.2 for d in delays)
    assert len({round(d, 6) for d in delays}) > 100


def test_a_stable_connection_resets_the_attempts():
    b = Backoff(initial=0.1, cap=10.0, jitter=0.0, stable_after=30.0)
    rng = random.Random(1)
    for _ in range(4):
        b.next_delay(rng)
    b.connected(100.0)
    b.disconnected(131.0)
    assert b.next_delay(rng) == 0.1


def test_a_connection_that_drops_quickly_keeps_backing_off():
    b = Backoff(initial=0.1, cap=10.0, jitter=0.0, stable_after=30.0)
    rng = random.Random(1)
    for _ in range(3):
        b.next_delay(rng)
    b.connected(100.0)
    b.disconnected(101.0)
    assert b.next_delay(rng) == 0.8


# --- after the exchange said "slow down": refill + backoff + upward jitter -------------------------


@pytest.mark.parametrize(
    ("refill", "attempts", "jitter", "low", "high"),
    [
        (0.5, 0, 0.0, 0.6, 0.6),  # refill + initial, exactly, without jitter
        (0.5, 3, 0.0, 1.3, 1.3),  # refused three times: refill + 0.1 * 2**3
        (0.5, 20, 0.0, 10.5, 10.5),  # the backoff part stops at the cap; the refill comes on top
        (5.0, 0, 0.2, 5.1, 5.1 * 1.2),  # Deribit's default bucket drained: 5 s, up to 20 % more
        (0.0, 0, 0.2, 0.1, 0.12),  # credits already full: the ordinary first delay, jittered upward
        (-1.0, 0, 0.0, 0.1, 0.1),  # a negative refill (clock skew) counts as none
    ],
)
def test_the_wait_after_a_rate_limit_is_refill_plus_backoff_plus_upward_jitter(
    refill, attempts, jitter, low, high
):
    rng = random.Random(3)
    for _ in range(50):
        b = Backoff(initial=0.1, cap=10.0, jitter=jitter, attempts=attempts)
        delay = b.after_rate_limit(rng, refill)
        assert low - 1e-9 <= delay <= high + 1e-9
        assert b.attempts == attempts + 1


def test_a_fleet_drained_at_once_spreads_out_above_the_refill():
    delays = [Backoff(initial=0.1, jitter=0.2).after_rate_limit(random.Random(i), 5.0) for i in range(100)]
    assert min(delays) >= 5.1
    assert max(delays) - min(delays) > 0.5  # spread over most of the 1.02 s the jitter allows
    assert len({round(d, 6) for d in delays}) == 100


def test_a_reconnect_refused_again_waits_longer_each_time():
    b = Backoff(initial=0.1, cap=10.0, jitter=0.0)
    rng = random.Random(1)
    assert [round(b.after_rate_limit(rng, 0.5), 3) for _ in range(5)] == [0.6, 0.7, 0.9, 1.3, 2.1]


def test_the_rate_limited_wait_never_drops_below_the_floor():
    b = Backoff(initial=0.0, cap=0.0, jitter=0.0, floor=0.01)
    assert b.after_rate_limit(random.Random(1), 0.0) == 0.01


def test_never_a_tight_loop_even_with_zero_initial_delay():
    b = Backoff(initial=0.0, cap=0.0, jitter=0.0, floor=0.01)
    assert b.next_delay(random.Random(1)) == 0.01


def test_retries_exhausted_after_max_retries_attempts():
    b = Backoff(max_retries=2, jitter=0.0)
    rng = random.Random(1)
    assert not b.exhausted()
    b.next_delay(rng)
    assert not b.exhausted()
    b.next_delay(rng)
    assert b.exhausted()


def test_unlimited_retries_never_exhaust():
    b = Backoff(max_retries=None)
    rng = random.Random(1)
    for _ in range(1000):
        b.next_delay(rng)
    assert not b.exhausted()
