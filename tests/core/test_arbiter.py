"""The redundancy arbiters as tables: which copy wins, what is held, filled, dropped, and how legs join."""

from __future__ import annotations

import pytest

from feeder.core.arbiter import (
    HOLD_NS,
    TRANSITIONS,
    Chain,
    LegEvent,
    LegState,
    LegStats,
    Offer,
    Sequence,
    Stamps,
    behind_percentile,
    next_leg_state,
)
from feeder.errors import InvalidTransition

A, B = 0, 1
J, W, V = LegState.JOINED, LegState.WAITING, LegState.VERIFYING


def _chain(*joined: int, hold_max: int = 4) -> Chain:
    chain = Chain([LegStats(), LegStats()], hold_max=hold_max)
    for leg in joined:
        chain.event(leg, LegEvent.LOADED)
    return chain


# --- legs per book ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "event", "after"),
    [
        (J, LegEvent.DOWN, W),
        (J, LegEvent.RESYNC, W),
        (J, LegEvent.LOADED, J),
        (W, LegEvent.LOADED, J),
        (W, LegEvent.MATCHED, J),
        (W, LegEvent.AHEAD, V),
        (W, LegEvent.UNVERIFIABLE, W),
        (W, LegEvent.DOWN, W),
        (V, LegEvent.MATCHED, J),
        (V, LegEvent.UNVERIFIABLE, W),
        (V, LegEvent.DOWN, W),
        (V, LegEvent.RESYNC, W),
    ],
)
def test_leg_transitions(state, event, after):
    assert next_leg_state(state, event) is after


@pytest.mark.parametrize(
    ("state", "event"), [(J, LegEvent.MATCHED), (J, LegEvent.AHEAD), (V, LegEvent.LOADED)]
)
def test_a_transition_the_table_does_not_allow_names_the_state_and_the_event(state, event):
    with pytest.raises(InvalidTransition, match=f"{event.value!r}.*{state.value!r}"):
        next_leg_state(state, event)


def test_a_dropped_connection_or_a_resync_always_sends_a_leg_back_to_waiting_for_its_snapshot():
    for state, allowed in TRANSITIONS.items():
        assert allowed[LegEvent.DOWN] is W and allowed[LegEvent.RESYNC] is W, state


def test_joined_counts_the_legs_that_feed_the_book_and_matches_are_counted_per_leg():
    chain = _chain(A)
    assert chain.joined == 1 and chain.legs == [J, W]
    chain.event(B, LegEvent.AHEAD)
    chain.event(B, LegEvent.MATCHED)
    assert chain.joined == 2 and chain.stats[B].matched == 1 and chain.stats[A].matched == 0
    chain.event(A, LegEvent.DOWN)
    assert chain.joined == 1 and chain.legs == [W, J]


# --- books: which copy wins ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("joined", "leg", "change_id", "prev", "last", "offer"),
    [
        ((A, B), A, 11, 10, 10, Offer.APPLY),  # the next change, first copy
        ((A, B), B, 11, 10, 11, Offer.DUPLICATE),  # the other leg's copy of a published change
        ((A, B), B, 9, 8, 11, Offer.DUPLICATE),  # an old one
        ((A, B), A, 13, 12, 10, Offer.HOLD),  # a hole on A: B may bring 11 and 12
        ((A,), A, 13, 12, 10, Offer.HOLE),  # nobody else can fill it: the book is broken
        ((A, B), A, 13, 9, 11, Offer.OVERLAP),  # spans 11, which the book has: A is out of step
        ((A,), B, 11, 10, 10, Offer.IGNORE),  # B does not feed the book (not joined)
    ],
)
def test_chain_offers(joined, leg, change_id, prev, last, offer):
    assert _chain(*joined).offer(leg, change_id, prev, last, 0) is offer


def test_a_loser_is_timed_against_the_winning_copy():
    chain = _chain(A, B)
    assert chain.offer(A, 11, 10, 10, 1_000) is Offer.APPLY
    chain.won(A, 11, 1_000)
    assert chain.offer(B, 11, 10, 11, 7_000) is Offer.DUPLICATE
    a, b = chain.stats
    assert (a.wins, a.losses, b.wins, b.losses, b.behind_ns) == (1, 0, 0, 1, 6_000)
    assert b.behind[(6).bit_length()] == 1 and behind_percentile(b.behind, 0.5) == 8


def test_a_repeat_on_the_winning_leg_is_a_duplicate_not_a_loss():
    chain = _chain(A, B)
    chain.won(A, 11, 0)
    chain.offer(A, 11, 10, 11, 5)
    assert (chain.stats[A].duplicates, chain.stats[A].losses) == (1, 0)
    chain.offer(B, 11, 10, 11, 9)  # the other leg's copy still finds its winner
    assert chain.stats[B].losses == 1 and chain.stats[B].behind_ns == 9


def test_a_loser_whose_winner_is_forgotten_counts_untimed():
    chain = _chain(A, B)
    chain.offer(B, 5, 4, 11, 0)
    assert chain.stats[B].losses == 1 and sum(chain.stats[B].behind) == 0


def test_a_hole_on_one_leg_is_filled_from_the_other_and_the_held_copies_follow_in_order():
    chain = _chain(A, B)
    for change_id, prev in ((13, 12), (14, 13)):  # A skipped 11 and 12
        assert chain.offer(A, change_id, prev, 10, 100) is Offer.HOLD
        chain.hold(prev, change_id, A, f"a{change_id}", 100)
    assert chain.release(10) is None
    last = 10
    for change_id in (11, 12):  # B brings them
        assert chain.offer(B, change_id, last, last, 200) is Offer.APPLY
        last = change_id
    released = []
    while (entry := chain.release(last)) is not None:
        released.append(entry[2])
        last = entry[0]
    assert released == ["a13", "a14"] and not chain.held
    assert chain.stats[A].held == 2 and chain.stats[A].filled == 2


def test_held_copies_the_other_leg_brought_first_are_dropped_as_losses():
    chain = _chain(A, B)
    chain.hold(12, 13, A, "a13", 100)
    chain.won(B, 13, 150)  # B was faster for 11, 12 and 13
    assert chain.release(13) is None and not chain.held
    assert chain.stats[A].losses == 1


def test_the_second_copy_of_a_held_change_is_a_loss_and_the_first_stays():
    chain = _chain(A, B)
    chain.hold(12, 13, A, "a13", 100)
    assert chain.offer(B, 13, 12, 10, 160) is Offer.HOLD
    chain.hold(12, 13, B, "b13", 160)
    assert chain.held[12][2] == "a13" and chain.stats[B].losses == 1


def test_a_hold_runs_out_after_hold_ns_and_is_bounded_in_size():
    chain = _chain(A, B, hold_max=2)
    chain.hold(12, 13, A, "a13", 1_000)
    chain.hold(13, 14, A, "a14", 2_000)
    assert chain.offer(A, 15, 14, 10, 3_000) is Offer.HOLE  # full
    assert not chain.expired(1_000 + HOLD_NS - 1) and chain.expired(1_000 + HOLD_NS)
    assert [e[0] for e in chain.take_held()] == [13, 14] and chain.stats[A].expired == 2 and not chain.held


def test_releasing_the_oldest_held_copy_moves_the_deadline_to_the_next():
    chain = _chain(A, B)
    chain.hold(10, 11, A, "a11", 1_000)
    chain.hold(20, 21, A, "a21", 5_000)
    chain.release(10)
    assert chain.deadline == 5_000 + HOLD_NS


# --- trades ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("up", "seq", "last", "offer"),
    [
        ((True, True), 7, -1, Offer.APPLY),  # the first trade seen
        ((True, True), 8, 7, Offer.APPLY),
        ((True, True), 7, 7, Offer.DUPLICATE),
        ((True, True), 10, 7, Offer.HOLD),  # 8 and 9 may come on the other leg
        ((True, False), 10, 7, Offer.HOLE),  # the other leg is down: published with GAP
    ],
)
def test_sequence_offers(up, seq, last, offer):
    sequence = Sequence([LegStats(), LegStats()])
    sequence.up = list(up)
    assert sequence.offer(A, seq, last, 0) is offer


def test_trades_held_for_a_hole_follow_once_it_is_filled():
    sequence = Sequence([LegStats(), LegStats()])
    sequence.hold(9, 10, A, "t10", 0)
    assert sequence.release(8) is None
    assert sequence.release(9)[2] == "t10"


# --- tickers ---------------------------------------------------------------------------------------


def test_each_timestamp_is_published_once_whichever_leg_brings_it_first():
    stamps = Stamps([LegStats(), LegStats()])
    assert [stamps.offer(leg, ts, 0) for leg, ts in ((A, 100), (B, 100), (B, 101), (A, 101), (A, 99))] == [
        True,
        False,
        True,
        False,
        False,
    ]


def test_two_messages_with_the_same_timestamp_are_both_published_once():
    stamps = Stamps([LegStats(), LegStats()])
    got = [stamps.offer(leg, 100, 0) for leg in (A, A, B, B)]  # A brings two, then B its two copies
    assert got == [True, True, False, False]
    assert stamps.offer(B, 100, 0) is True  # a third one, first on B


def test_ticker_losses_are_timed_against_the_winner():
    stamps = Stamps([LegStats(), LegStats()])
    stamps.offer(A, 100, 1_000)
    stamps.won(A, None, 1_000)
    stamps.offer(B, 100, 4_000)
    assert stamps.stats[B].behind_ns == 3_000 and stamps.stats[A].wins == 1


# --- figures ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("behind_us", "q", "expected"),
    [((), 0.5, None), ((0.5,), 0.5, 1), ((3, 3, 3, 100), 0.5, 4), ((3, 3, 3, 100), 0.99, 128)],
)
def test_behind_percentiles_are_bucket_upper_bounds(behind_us, q, expected):
    stats = LegStats()
    for us in behind_us:
        stats.lost(int(us * 1000))
    assert behind_percentile(stats.behind, q) == expected
    assert stats.as_dict()["behind_p50_us"] == behind_percentile(stats.behind, 0.5)
