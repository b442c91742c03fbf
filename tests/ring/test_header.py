"""The ring header, as data: what `check_header` accepts and the errors it gives for everything else."""

from __future__ import annotations

import numpy as np
import pytest

from feeder.errors import FingerprintMismatch, NotARing, RingVersionMismatch, UsageError
from feeder.ring.header import (
    CAPACITY,
    FINGERPRINT,
    HEADER_SIZE,
    LAYOUT,
    LAYOUT_VERSION,
    MAX_CAPACITY,
    HeaderWords,
    check_capacity,
    check_header,
    write_header,
)
from feeder.ring.schema import header_layout, record_schema

BOOK = record_schema("book")


def fresh_segment(capacity: int = 8) -> bytearray:
    buf = bytearray(HEADER_SIZE + capacity * BOOK.size)
    write_header(buf, BOOK, capacity, "book.BTC", "inst1", 1234)
    return buf


def test_a_fresh_header_describes_the_ring_it_was_written_for():
    info = check_header(fresh_segment(), HEADER_SIZE + 8 * BOOK.size, "seg")
    assert (info.name, info.instance, info.record_type) == ("book.BTC", "inst1", "book")
    assert (info.capacity, info.record_size, info.fingerprint) == (8, BOOK.size, BOOK.fingerprint)
    assert info.created_ns > 0


def test_header_fields_sit_at_the_offsets_ring_json_declares():
    buf = fresh_segment()
    head = np.frombuffer(buf, header_layout().dtype, count=1)[0]
    assert bytes(buf[0:8]) == b"FEEDRING"
    assert int.from_bytes(buf[16:24], "little") == head["capacity"] == 8
    assert int.from_bytes(buf[32:40], "little") == BOOK.fingerprint
    assert int.from_bytes(buf[160:168], "little") == 1234  # owner_pid


def test_a_segment_smaller_than_a_header_is_not_a_ring():
    with pytest.raises(NotARing, match="100 bytes, smaller than a ring header"):
        check_header(fresh_segment()[:100], 100, "seg")


def test_a_segment_too_small_to_hold_a_magic_is_not_a_ring():
    with pytest.raises(NotARing, match="smaller than a ring header"):
        check_header(b"FEED", 4, "seg")


def test_a_layout_1_ring_is_refused_as_written_by_an_older_feeder_whatever_its_size():
    v1 = fresh_segment()[: 512 + 2 * BOOK.size]  # layout 1: a 512-byte header, then the slots
    with HeaderWords(v1) as words:
        words.u32[LAYOUT_VERSION] = 1
    with pytest.raises(RingVersionMismatch, match="layout version 1, written by an older feeder") as caught:
        check_header(v1, len(v1), "seg")
    assert f"reads only version {LAYOUT.layout_version}" in str(caught.value)


def test_bad_magic_is_not_a_ring_and_the_error_shows_what_was_found():
    buf = fresh_segment()
    buf[0:8] = b"GARBAGE!"
    with pytest.raises(NotARing, match=r"b'GARBAGE!'.*expected b'FEEDRING'"):
        check_header(buf, len(buf), "seg")


def test_another_layout_version_is_refused_naming_both_versions():
    buf = fresh_segment()
    with HeaderWords(buf) as words:
        words.u32[LAYOUT_VERSION] = LAYOUT.layout_version + 1
    with pytest.raises(
        RingVersionMismatch, match=f"version {LAYOUT.layout_version + 1}.*version {LAYOUT.layout_version}"
    ):
        check_header(buf, len(buf), "seg")


def test_a_fingerprint_mismatch_shows_both_fingerprints():
    buf = fresh_segment()
    with HeaderWords(buf) as words:
        words.u64[FINGERPRINT] = 0x1122334455667788
    with pytest.raises(FingerprintMismatch) as caught:
        check_header(buf, len(buf), "seg")
    assert "0x1122334455667788" in str(caught.value)
    assert f"{BOOK.fingerprint:#018x}" in str(caught.value)


def test_an_unknown_record_type_is_a_version_mismatch():
    buf = fresh_segment()
    buf[40:56] = b"orderbook3".ljust(16, b"\0")
    with pytest.raises(RingVersionMismatch, match="'orderbook3'"):
        check_header(buf, len(buf), "seg")


def test_a_capacity_that_is_not_a_power_of_two_is_a_damaged_header():
    buf = fresh_segment()
    with HeaderWords(buf) as words:
        words.u64[CAPACITY] = 6
    with pytest.raises(NotARing, match="damaged ring header: capacity 6"):
        check_header(buf, len(buf), "seg")


def test_a_segment_size_that_disagrees_with_the_header_is_a_damaged_header():
    buf = fresh_segment()
    with pytest.raises(NotARing, match="header implies"):
        check_header(buf, len(buf) - BOOK.size, "seg")


@pytest.mark.parametrize("capacity", [0, 1, 3, 1000, MAX_CAPACITY * 2, 2.0, "8"])
def test_capacity_must_be_a_power_of_two_in_range(capacity):
    with pytest.raises(UsageError, match="power of two"):
        check_capacity(capacity)


@pytest.mark.parametrize("capacity", [2, 1024, MAX_CAPACITY])
def test_powers_of_two_in_range_are_valid_capacities(capacity):
    assert check_capacity(capacity) == capacity
