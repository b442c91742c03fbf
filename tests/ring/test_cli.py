"""`python -m feeder rings`, run as a user would: in a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from helpers import DEADLINE
from ring.ringkit import read_line, selfcheck_records

from feeder.ring import RingWriter, create_ring


def rings(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "feeder", "rings", *args], capture_output=True, text=True, timeout=DEADLINE
    )


def start_owner_then_kill_it(procs, ring: str) -> int:
    """A ring left behind by a SIGKILLed owner; returns the dead owner's pid."""
    owner = procs(
        "from feeder.ring import RingWriter\n"
        "from ring.ringkit import hold, selfcheck_records\n"
        f"with RingWriter.create({ring!r}, 'book', 64) as w:\n"
        "    w.publish_batch(selfcheck_records(0, 3))\n"
        "    print('ready', flush=True)\n"
        "    hold()\n"
    )
    assert read_line(owner) == "ready"
    os.kill(owner.pid, signal.SIGKILL)
    owner.wait(timeout=DEADLINE)
    return owner.pid


def test_rings_lists_each_ring_with_its_stream_type_capacity_sequence_writer_epoch_and_age():
    with RingWriter.create("book.BTC", "book", 1024) as writer, create_ring("trades.BTC", "trade", 64):
        writer.publish_batch(selfcheck_records(0, 3))
        out = rings()
    assert out.returncode == 0, out.stderr
    header, *rows = out.stdout.splitlines()
    assert header.split() == [
        "RING", "INSTANCE", "STREAM", "TYPE", "CAPACITY", "MEMORY", "WRITE_SEQ", "WRITER", "EPOCH", "LAST_PUBLISH",
        "STATUS",
    ]  # fmt: skip
    book = rows[0].split()
    assert book[0] == "book.BTC" and book[2:7] == ["book", "book", "1024", "392.0KiB", "3"]
    assert book[7:9] == [str(os.getpid()), "(alive)"] and book[9] == "1"
    assert book[-3:] == ["ms", "ago", "live"] or book[-3:] == ["s", "ago", "live"]
    trades = rows[1].split()
    assert trades[:8] == ["trades.BTC", trades[1], "trades", "trade", "64", "16.0KiB", "0", "-"]
    assert "never" in rows[1]
    assert rows[2] == "2 rings, 408.0KiB of shared memory"


def test_rings_json_gives_every_field_for_machines(instance):
    with RingWriter.create("book.BTC", "book", 64) as writer:
        writer.publish_batch(selfcheck_records(0, 2))
        out = rings("--json")
    [info] = json.loads(out.stdout)
    assert info["name"] == "book.BTC" and info["instance"] == instance
    assert (info["stream"], info["symbol"], info["record_type"]) == ("book", "BTC", "book")
    assert (info["capacity"], info["write_seq"], info["epoch"]) == (64, 2, 1)
    assert info["writer_pid"] == info["owner_pid"] == os.getpid()
    assert info["writer_alive"] and info["owner_alive"] and info["status"] == "live"
    assert 0 <= info["last_publish_age_s"] < DEADLINE


def test_rings_says_so_when_the_instance_has_none(instance):
    out = rings()
    assert out.returncode == 0 and out.stdout.strip() == f"no rings in instance {instance!r}"


def test_rings_instance_and_all_choose_which_instances_are_listed(instance):
    other = f"{instance}x"
    with create_ring("book.BTC", "book", 64), create_ring("book.ETH", "book", 64, instance=other):
        mine = json.loads(rings("--json").stdout)
        theirs = json.loads(rings("--json", "--instance", other).stdout)
        both = json.loads(rings("--json", "--all").stdout)
    assert [r["name"] for r in mine] == ["book.BTC"]
    assert [r["name"] for r in theirs] == ["book.ETH"]
    assert {(r["instance"], r["name"]) for r in both} >= {(instance, "book.BTC"), (other, "book.ETH")}


def test_rings_shows_a_dead_owners_ring_as_stale(procs):
    dead = start_owner_then_kill_it(procs, "book.BTC")
    [info] = json.loads(rings("--json").stdout)
    assert (info["status"], info["owner_pid"], info["owner_alive"]) == ("stale", dead, False)
    assert (info["writer_pid"], info["writer_alive"]) == (dead, False)
    assert f"{dead} (dead)" in rings().stdout
    assert rings("--clean").returncode == 0


def test_rings_clean_removes_stale_rings_and_keeps_live_ones(instance, procs):
    start_owner_then_kill_it(procs, "book.BTC")
    with create_ring("book.ETH", "book", 64):
        out = rings("--clean")
        assert out.returncode == 0
        assert out.stdout.startswith("removed:") and "book.BTC" in out.stdout and "book.ETH" not in out.stdout
        assert not Path(f"/dev/shm/feeder.{instance}.book.BTC").exists()
        assert Path(f"/dev/shm/feeder.{instance}.book.ETH").exists()
        assert rings("--clean").stdout.strip() == f"no stale rings in instance {instance!r}"


def test_rings_shows_a_foreign_segment_as_invalid_and_clean_removes_it(instance):
    path = Path(f"/dev/shm/feeder.{instance}.book.BTC")
    path.write_bytes(b"x" * 1000)
    try:
        [info] = json.loads(rings("--json").stdout)
        assert info["status"] == "invalid" and "not a feeder ring" in info["problem"]
        rings("--clean")
        assert not path.exists()
    finally:
        path.unlink(missing_ok=True)


def test_rings_rejects_a_bad_instance_name_with_exit_code_2():
    out = rings("--instance", "no/slashes")
    assert out.returncode == 2 and "instance name 'no/slashes' is not allowed" in out.stderr


def test_a_segment_whose_creator_died_before_linking_it_is_incomplete_and_cleaned(instance):
    leftover = Path(f"/dev/shm/.feeder.{instance}.book.BTC.new-99999-abcd")
    leftover.write_bytes(b"\0" * 1024)
    try:
        [info] = json.loads(rings("--json").stdout)
        assert (info["name"], info["status"]) == ("book.BTC", "incomplete")
        rings("--clean")
        assert not leftover.exists()
    finally:
        leftover.unlink(missing_ok=True)
