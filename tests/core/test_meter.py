"""A rate from a growing counter: measured over stretches of at least `every_s`, restartable."""

from __future__ import annotations

import pytest

from feeder.core.meter import RateMeter


@pytest.mark.parametrize(
    ("samples", "rates"),
    [
        ([(0.0, 0), (0.5, 50), (1.0, 100)], [0.0, 0.0, 100.0]),  # no rate before a whole stretch
        ([(0.0, 0), (1.0, 100), (1.5, 500), (2.0, 300)], [0.0, 100.0, 100.0, 200.0]),  # stands in between
        ([(10.0, 5), (12.0, 5)], [0.0, 0.0]),  # nothing new: zero
    ],
)
def test_the_rate_is_taken_over_stretches_of_at_least_every_s(samples, rates):
    meter = RateMeter(1.0)
    assert [meter.sample(now, count) for now, count in samples] == rates


def test_a_first_rate_can_be_given_and_a_restart_keeps_the_last_rate_until_the_next_stretch():
    meter = RateMeter(0.5, rate=42.0)
    assert meter.sample(0.0, 1000) == 42.0
    assert meter.sample(1.0, 1100) == 100.0
    meter.restart()  # a new process counts from zero again
    assert meter.sample(1.2, 0) == 100.0
    assert meter.sample(2.2, 30) == pytest.approx(30.0)
