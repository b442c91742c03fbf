"""Bad-input log throttle: count everything, log the first and then once per period with the gap."""

from __future__ import annotations

from feeder.core.throttle import LogThrottle


def test_first_occurrence_is_logged_then_suppressed_within_the_period():
    t = LogThrottle(period=60.0)
    assert t.hit("malformed_json", 0.0) == 0
    assert [t.hit("malformed_json", s) for s in (1.0, 2.0, 3.0)] == [None, None, None]
    assert t.hit("malformed_json", 61.0) == 3
    assert t.counts["malformed_json"] == 5


def test_kinds_are_throttled_separately():
    t = LogThrottle(period=60.0)
    t.hit("malformed_json", 0.0)
    assert t.hit("oversized_frame", 1.0) == 0
