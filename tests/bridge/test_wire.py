"""What goes on the wire: subjects, ring selection, batch headers and records, and refusing bad batches."""

from __future__ import annotations

import numpy as np
import pytest

from feeder import record_schema
from feeder.bridge.wire import (
    BadBatch,
    ForeignLayout,
    RingIdentity,
    RingPatterns,
    Subjects,
    decode_header,
    decode_records,
    encode_headers,
)
from feeder.errors import UsageError

BOOK = record_schema("book")
IDENTITY = RingIdentity("book", 1024, BOOK.fingerprint, 1_764_000_000_000_000_000)
SUBJECTS = Subjects("prod")


def book(seqs: list[int]) -> bytes:
    out = np.zeros(len(seqs), BOOK.dtype)
    out["seq"] = seqs
    return out.tobytes()


def test_ring_subjects_keep_the_ring_name_and_orders_stay_outside_the_stream():
    assert SUBJECTS.ring("book.BTC-27DEC26") == "feeder.prod.rings.book.BTC-27DEC26"
    assert SUBJECTS.ring_of("feeder.prod.rings.book.BTC-27DEC26") == "book.BTC-27DEC26"
    assert not SUBJECTS.orders.startswith(SUBJECTS.all_rings[:-1])
    assert SUBJECTS.stream == "FEEDER_prod"


@pytest.mark.parametrize("subject", ["feeder.other.rings.book.BTC", "feeder.prod.rings.BOOK"])
def test_a_subject_that_is_not_a_ring_of_the_source_is_a_bad_batch(subject):
    with pytest.raises(BadBatch):
        SUBJECTS.ring_of(subject)


def test_source_names_are_checked():
    with pytest.raises(UsageError, match="source name"):
        Subjects("a.b")


def test_ring_patterns_are_globs_over_ring_names():
    patterns = RingPatterns("book.*, trades.BTC")
    assert patterns("book.ETH") and patterns("trades.BTC") and not patterns("trades.ETH")


def test_subject_filters_cover_every_pattern_once():
    assert RingPatterns("book.*,book.BTC,trades.BTC").filters(SUBJECTS) == [
        "feeder.prod.rings.book.>",
        "feeder.prod.rings.trades.BTC",
    ]
    assert RingPatterns("*").filters(SUBJECTS) == ["feeder.prod.rings.>"]


@pytest.mark.parametrize("text", ["", " , ", "book.>"])
def test_bad_ring_patterns_are_refused(text):
    with pytest.raises(UsageError, match="--rings"):
        RingPatterns(text)


def test_a_header_round_trips():
    header = decode_header(encode_headers(IDENTITY.header(), 3, 100, 105))
    assert (header.identity, header.epoch, header.first, header.end) == (IDENTITY, 3, 100, 105)


@pytest.mark.parametrize(
    ("name", "value", "match"),
    [
        ("Feeder-Ring", "order 1024 00 1", "Feeder-Ring"),
        ("Feeder-Ring", "book 1000 00 1", "power of two"),
        ("Feeder-Ring", "book 1024 zz 1", "Feeder-Ring"),
        ("Feeder-Epoch", "-1", "Feeder-Epoch"),
        ("Feeder-Seq", "5 4", "before first"),
        ("Feeder-Seq", "5", "Feeder-Seq"),
        ("Feeder-Seq", None, "missing header Feeder-Seq"),
    ],
)
def test_a_bad_header_names_what_is_wrong(name, value, match):
    headers = encode_headers(IDENTITY.header(), 3, 100, 105)
    if value is None:
        del headers[name]
    else:
        headers[name] = value
    with pytest.raises(BadBatch, match=match):
        decode_header(headers)


def test_records_come_back_as_they_were_sent():
    header = decode_header(encode_headers(IDENTITY.header(), 1, 10, 13))
    assert decode_records(header, book([10, 12])).tobytes() == book([10, 12])


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (book([10])[:-1], "whole 384-byte records"),
        (book([9]), "not increasing within"),
        (book([13]), "not increasing within"),
        (book([11, 11]), "not increasing within"),
        (book([10, 11, 12, 13]), "4 records for seqs"),
    ],
)
def test_records_that_do_not_fit_their_header_are_refused(payload, match):
    header = decode_header(encode_headers(IDENTITY.header(), 1, 10, 13))
    with pytest.raises(BadBatch, match=match):
        decode_records(header, payload)


def test_records_of_another_layout_are_refused():
    other = RingIdentity("book", 1024, BOOK.fingerprint ^ 1, 1)
    with pytest.raises(ForeignLayout, match="fingerprint"):
        decode_records(decode_header(encode_headers(other.header(), 1, 0, 1)), book([0]))
