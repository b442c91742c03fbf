"""The audit's pure parts: judging a snapshot against the window, and spreading audits over time."""

from __future__ import annotations

import pytest

from feeder.core.audit import AuditSchedule, BookAudit, Verdict
from feeder.errors import ConfigError

WAIT = 1_000


def _audit(*published: tuple[int, bytes]) -> BookAudit:
    """An audit out since the first of `published` (the last record before the request), then the rest."""
    audit = BookAudit(window=4)
    audit.start(*published[0])
    for change_id, levels in published[1:]:
        assert audit.published(change_id, levels, 0) is None
    return audit


def test_a_snapshot_at_a_published_change_id_passes_when_the_levels_are_the_same():
    audit = _audit((10, b"a"), (12, b"b"))
    assert audit.check(10, b"a", 5, WAIT) is Verdict.PASSED
    assert (audit.passed, audit.failed, audit.unverifiable, audit.last_passed_ns) == (1, 0, 0, 5)


def test_a_snapshot_that_differs_fails_and_keeps_both_books():
    audit = _audit((10, b"a"), (12, b"b"))
    assert audit.check(12, b"phantom", 5, WAIT) is Verdict.FAILED
    assert audit.failed == 1 and audit.last_passed_ns == 0
    assert (audit.last_failure.change_id, audit.last_failure.ours, audit.last_failure.theirs) == (
        12,
        b"b",
        b"phantom",
    )


def test_a_snapshot_ahead_of_the_stream_is_compared_when_the_stream_reaches_it():
    audit = _audit((10, b"a"))
    assert audit.check(14, b"c", 0, WAIT) is Verdict.PENDING
    assert audit.published(12, b"b", 1) is None
    assert audit.published(14, b"c", 2) is Verdict.PASSED
    assert audit.pending is None and audit.passed == 1


def test_a_pending_snapshot_fails_when_the_stream_reaches_it_with_other_levels():
    audit = _audit((10, b"a"))
    audit.check(14, b"c", 0, WAIT)
    assert audit.published(14, b"x", 1) is Verdict.FAILED


@pytest.mark.parametrize(
    ("next_id", "now", "reason"),
    [
        (15, 1, "the stream passed the snapshot's change_id without stopping"),
        (13, WAIT + 1, "the stream did not reach the snapshot's change_id in time"),
    ],
)
def test_a_pending_snapshot_the_stream_cannot_confirm_is_unverifiable(next_id, now, reason):
    audit = _audit((10, b"a"))
    audit.check(14, b"c", 0, WAIT)
    assert audit.published(next_id, b"d", now) is Verdict.UNVERIFIABLE
    assert audit.reasons == {reason: 1} and audit.pending is None


@pytest.mark.parametrize(
    ("change_id", "reason"),
    [
        (11, "the snapshot's change_id was never published on this stream"),
        (5, "the snapshot is older than the audit window"),
    ],
)
def test_a_snapshot_the_window_cannot_judge_is_unverifiable(change_id, reason):
    audit = _audit((10, b"a"), (12, b"b"))
    assert audit.check(change_id, b"a", 0, WAIT) is Verdict.UNVERIFIABLE
    assert audit.reasons == {reason: 1}


def test_the_window_forgets_the_oldest_change_ids():
    audit = _audit(*[(i, b"x") for i in range(1, 7)])
    assert audit.check(2, b"x", 0, WAIT) is Verdict.UNVERIFIABLE
    assert audit.check(3, b"x", 0, WAIT) is Verdict.PASSED


def test_a_reset_forgets_the_history_and_settles_a_pending_audit_as_unverifiable():
    audit = _audit((10, b"a"))
    audit.check(14, b"c", 0, WAIT)
    assert audit.reset("resync") is Verdict.UNVERIFIABLE
    assert audit.check(10, b"a", 0, WAIT) is Verdict.UNVERIFIABLE
    assert audit.reasons == {"resync": 1, "no valid book to compare": 1}


def test_every_audit_ends_in_exactly_one_count():
    audit = _audit((10, b"a"))
    audit.check(14, b"c", 0, WAIT)
    audit.check(15, b"c", 0, WAIT)  # supersedes the first: it counts as unverifiable
    audit.published(15, b"c", 1)
    assert (audit.passed, audit.failed, audit.unverifiable) == (1, 0, 1)


def test_audits_are_spread_evenly_over_time_and_books():
    schedule = AuditSchedule(["a", "b", "c", "d"], 60.0, start_s=100.0)
    seen = []
    for _ in range(8):
        book, at = schedule.head()
        seen.append((book, at))
        schedule.advance(at)
    assert [b for b, _ in seen] == list("abcdabcd")
    assert [at for _, at in seen] == [105.0, 120.0, 135.0, 150.0, 165.0, 180.0, 195.0, 210.0]


def test_the_first_audit_comes_early_with_few_books_and_half_a_step_in_with_many():
    assert AuditSchedule(["a"], 60.0, start_s=100.0).head() == ("a", 105.0)
    assert AuditSchedule([f"b{i}" for i in range(1000)], 60.0, start_s=100.0).head() == ("b0", 100.03)


def test_a_late_schedule_does_not_burst_and_a_postponed_book_keeps_its_turn():
    schedule = AuditSchedule(["a", "b"], 10.0, start_s=0.0)
    schedule.advance(100.0)  # the loop woke up very late: the next audit is now, not 20 overdue ones
    assert schedule.head() == ("b", 100.0)
    schedule.postpone(101.0)
    assert schedule.head() == ("b", 101.0)


@pytest.mark.parametrize(("books", "interval"), [([], 60.0), (["a"], 0.0)])
def test_a_schedule_needs_books_and_a_positive_interval(books, interval):
    with pytest.raises(ConfigError):
        AuditSchedule(books, interval, 0.0)


def test_a_book_not_being_audited_keeps_no_window():
    audit = BookAudit(window=4)
    assert audit.published(10, b"a", 0) is None and not audit.window
    assert audit.check(10, b"a", 0, WAIT) is Verdict.UNVERIFIABLE
    assert audit.reasons == {"no valid book to compare": 1}


def test_the_window_is_kept_from_the_request_to_the_check_only():
    audit = _audit((10, b"a"), (12, b"b"))
    assert audit.check(12, b"b", 1, WAIT) is Verdict.PASSED
    audit.published(14, b"c", 2)
    assert [cid for cid, _ in audit.window] == [10, 12]  # nothing after the check


def test_a_pending_snapshot_settled_later_leaves_the_window_of_a_newer_request():
    audit = _audit((10, b"a"))
    assert audit.check(20, b"z", 0, WAIT) is Verdict.PENDING
    audit.start(11, b"b")  # the next audit of this book goes out while the first still waits
    assert audit.published(21, b"c", 1) is Verdict.UNVERIFIABLE  # the stream passed 20
    assert audit.check(21, b"c", 2, WAIT) is Verdict.PASSED
