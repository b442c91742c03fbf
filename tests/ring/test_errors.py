"""Every way attaching to, creating or writing a ring can fail, and what the error tells the user."""

from __future__ import annotations

from pathlib import Path

import pytest
from ring.ringkit import raw_segment, read_line

from feeder.errors import (
    FingerprintMismatch,
    NotARing,
    RingExists,
    RingNotFound,
    RingVersionMismatch,
    SchemaError,
    UsageError,
)
from feeder.ring import RingReader, RingWriter, create_ring
from feeder.ring.header import FINGERPRINT, LAYOUT_VERSION


def segment(instance: str, ring: str = "book.BTC") -> Path:
    return Path(f"/dev/shm/feeder.{instance}.{ring}")


def test_ring_not_found_names_the_ring_the_instance_the_segment_and_how_to_start_the_feeder(instance):
    with pytest.raises(RingNotFound) as caught:
        RingReader("book.BTC")
    message = str(caught.value)
    assert "'book.BTC'" in message and f"'{instance}'" in message
    assert str(segment(instance)) in message
    assert "python -m feeder" in message and f"FEEDER_INSTANCE={instance}" in message


def test_ring_not_found_is_also_a_file_not_found_error():
    with pytest.raises(FileNotFoundError):
        RingReader("book.BTC")


def test_attaching_a_writer_to_a_missing_ring_is_ring_not_found():
    with pytest.raises(RingNotFound, match=r"'book\.BTC'"):
        RingWriter.attach("book.BTC", "book")


def test_an_explicit_instance_overrides_the_environment(instance):
    with RingWriter.create("book.BTC", "book", 8, instance=f"{instance}b") as w:
        assert w.instance == f"{instance}b"
        with pytest.raises(RingNotFound):
            RingReader("book.BTC")
        with RingReader("book.BTC", instance=f"{instance}b") as r:
            assert r.instance == f"{instance}b"


def test_a_foreign_file_under_the_ring_name_is_not_a_ring(instance):
    path = segment(instance)
    path.write_bytes(b"hello, not a ring".ljust(4096, b"\0"))
    try:
        with pytest.raises(NotARing, match=r"not a feeder ring: it starts with b'hello, n'"):
            RingReader("book.BTC")
    finally:
        path.unlink()


def test_an_empty_file_under_the_ring_name_is_not_a_ring(instance):
    path = segment(instance)
    path.touch()
    try:
        with pytest.raises(NotARing, match="0 bytes, smaller than a ring header"):
            RingReader("book.BTC")
    finally:
        path.unlink()


def test_a_ring_with_another_fingerprint_is_refused_showing_both(instance):
    with RingWriter.create("book.BTC", "book", 8) as w:
        with raw_segment(segment(instance)) as (words, _):
            words.u64[FINGERPRINT] = 0xDEADBEEF
        with pytest.raises(FingerprintMismatch) as caught:
            RingReader("book.BTC")
        assert "0x00000000deadbeef" in str(caught.value)
        assert f"{w.info.fingerprint:#018x}" in str(caught.value)


def test_a_ring_of_another_layout_version_is_refused(instance):
    with RingWriter.create("book.BTC", "book", 8):
        with raw_segment(segment(instance)) as (words, _):
            words.u32[LAYOUT_VERSION] = 99
        with pytest.raises(RingVersionMismatch, match="layout version 99"):
            RingReader("book.BTC")


def test_creating_a_ring_another_live_process_owns_is_ring_exists_naming_that_pid(procs):
    owner = procs(
        "from feeder.ring import create_ring\n"
        "from ring.ringkit import hold\n"
        "with create_ring('book.BTC', 'book', 8):\n"
        "    print('ready', flush=True)\n"
        "    hold()\n"
    )
    assert read_line(owner) == "ready"
    with pytest.raises(RingExists, match=f"owned by a live process \\(pid {owner.pid}"):
        create_ring("book.BTC", "book", 8)


def test_creating_a_ring_this_process_already_owns_is_ring_exists():
    with create_ring("book.BTC", "book", 8), pytest.raises(RingExists):
        RingWriter.create("book.BTC", "book", 8)


def test_a_second_live_writer_is_refused_naming_the_first(procs):
    with create_ring("book.BTC", "book", 8):
        writer = procs(
            "from feeder.ring import RingWriter\n"
            "from ring.ringkit import hold\n"
            "with RingWriter.attach('book.BTC', 'book'):\n"
            "    print('ready', flush=True)\n"
            "    hold()\n"
        )
        assert read_line(writer) == "ready"
        with pytest.raises(RingExists, match=f"already has a live writer \\(pid {writer.pid}\\)"):
            RingWriter.attach("book.BTC", "book")


def test_attaching_as_writer_of_another_record_type_is_refused():
    with create_ring("book.BTC", "book", 8), pytest.raises(UsageError, match="holds book records, not trade"):
        RingWriter.attach("book.BTC", "trade")


@pytest.mark.parametrize("name", ["BTC", "Book.BTC", "book.", "book BTC", "book." + "x" * 80])
def test_bad_ring_names_are_refused_showing_the_expected_form(name):
    with pytest.raises(UsageError, match=r"expected '<stream>\.<symbol>'"):
        create_ring(name, "book", 8)


def test_a_bad_instance_name_is_refused():
    with pytest.raises(UsageError, match="instance name 'a/b' is not allowed"):
        RingReader("book.BTC", instance="a/b")


def test_an_unknown_record_type_is_refused_listing_the_known_ones():
    with pytest.raises(SchemaError, match="expected one of book, book25, book50, trade, ticker"):
        create_ring("book.BTC", "orders", 8)


def test_a_bad_capacity_is_refused():
    with pytest.raises(UsageError, match="capacity 100 is not allowed"):
        create_ring("book.BTC", "book", 100)
