"""The cross-process credit bucket: one budget for every process naming the same directory and name."""

from __future__ import annotations

import time

import pytest
from helpers import kill_tree, spawn_python

from feeder.client import SharedBucket
from feeder.errors import ConfigError

# Each child takes as many 1-credit requests as it can for `seconds`, then prints how many it got.
DRAW = """
import sys, time
from feeder.client import SharedBucket
bucket = SharedBucket(sys.argv[1], "acct", 100.0, 50.0)
sys.stdout.write("ready\\n"); sys.stdout.flush()
sys.stdin.readline()
end = time.monotonic() + float(sys.argv[2])
taken = 0
while time.monotonic() < end:
    if bucket.take_or_wait(1.0, time.monotonic()) == 0.0:
        taken += 1
print(taken)
"""


def test_two_bucket_objects_on_one_file_share_the_credits(tmp_path):
    a = SharedBucket(tmp_path, "acct", 10.0, 1.0)
    b = SharedBucket(tmp_path, "acct", 10.0, 1.0)
    try:
        now = time.monotonic()
        assert a.take_or_wait(6.0, now) == 0.0
        assert b.take_or_wait(6.0, now) > 0.0
        assert b.level(now) == pytest.approx(4.0, abs=0.01)
    finally:
        a.close()
        b.close()


def test_processes_drawing_at_once_never_exceed_the_shared_budget(tmp_path):
    seconds = 1.0
    procs = [
        spawn_python(DRAW, str(tmp_path), str(seconds), stdin=-1, stdout=-1, text=True) for _ in range(3)
    ]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "ready"
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        counts = [int(p.communicate(timeout=60)[0]) for p in procs]
    finally:
        for p in procs:
            kill_tree(p)
    # capacity 100 + 50/s refill over the window (the starts are staggered by up to a few hundred ms
    # on a loaded machine, so allow the budget of a generous window, never three times it)
    assert sum(counts) <= 100 + 50 * (seconds + 1.0)
    assert sum(counts) >= 100
    assert all(c > 0 for c in counts), counts


def test_a_process_with_other_limits_is_told_it_disagrees(tmp_path):
    first = SharedBucket(tmp_path, "acct", 10.0, 1.0)
    try:
        with pytest.raises(ConfigError, match="created with capacity=10, refill_per_s=1"):
            SharedBucket(tmp_path, "acct", 20.0, 1.0)
    finally:
        first.close()


def test_the_bucket_file_is_private_to_the_user(tmp_path):
    bucket = SharedBucket(tmp_path, "acct", 10.0, 1.0)
    try:
        assert (bucket.path.stat().st_mode & 0o777) == 0o600
    finally:
        bucket.close()


def test_drain_empties_the_shared_bucket_for_everyone(tmp_path):
    a = SharedBucket(tmp_path, "acct", 10.0, 5.0)
    b = SharedBucket(tmp_path, "acct", 10.0, 5.0)
    try:
        now = time.monotonic()
        assert a.drain(now) == pytest.approx(2.0)
        assert b.take_or_wait(1.0, now) == pytest.approx(0.2)
    finally:
        a.close()
        b.close()
