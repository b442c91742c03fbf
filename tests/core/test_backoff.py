"""Reconnect backoff: exponential, capped, jittered, reset after a stable connection, bounded retries."""

from __future__ import annotations

import random

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


def test_a_demanded_minimum_wins_over_a_shorter_backoff():
    b = Backoff(initial=0.1, cap=10.0, jitter=0.0)
    assert b.next_delay(random.Random(1), at_least=5.0) == 5.0


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
