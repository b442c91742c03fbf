"""Placement as a table: instruments, workers and CPUs in; each worker's rings, CPU and warnings out."""

from __future__ import annotations

import pytest

from feeder.core.placement import least_loaded, place
from feeder.errors import UsageError


def _instruments(*names: str) -> list[list[str]]:
    return [[f"book.{n}", f"trades.{n}"] for n in names]


@pytest.mark.parametrize(
    ("names", "workers", "cpus", "rings", "pinned"),
    [
        ("AB", 2, [0, 1], [["book.A", "trades.A"], ["book.B", "trades.B"]], [0, 1]),
        ("ABC", 2, [0, 1], [["book.A", "trades.A", "book.C", "trades.C"], ["book.B", "trades.B"]], [0, 1]),
        (
            "ABCD",
            3,
            [4],
            [["book.A", "trades.A", "book.D", "trades.D"], ["book.B", "trades.B"], ["book.C", "trades.C"]],
            [4, 4, 4],
        ),
        ("A", 4, [0, 1, 2, 3], [["book.A", "trades.A"]], [0]),  # never more workers than instruments
        (
            "ABC",
            3,
            [2, 3],
            [["book.A", "trades.A"], ["book.B", "trades.B"], ["book.C", "trades.C"]],
            [2, 3, 2],
        ),
    ],
)
def test_instruments_go_round_robin_with_all_their_streams_and_workers_round_robin_over_cpus(
    names, workers, cpus, rings, pinned
):
    plan = place(_instruments(*names), workers, cpus, busy_poll=False)
    assert [list(r) for r in plan.rings] == rings
    assert list(plan.cpus) == pinned


@pytest.mark.parametrize(
    ("names", "workers", "cpus", "busy_poll", "warned"),
    [
        ("AB", 2, [0, 1], False, []),
        ("AB", 4, [0, 1, 2, 3], False, ["set workers = 2"]),
        ("ABC", 3, [0, 1], False, ["3 workers share 2 CPUs"]),
        ("AB", 2, [0, 1], True, ["busy_poll with 2 workers on 2 CPUs"]),
        ("AB", 2, [0, 1, 2], True, []),
        ("ABC", 4, [0], True, ["set workers = 3", "3 workers share 1 CPUs", "busy_poll with 3 workers"]),
    ],
)
def test_a_questionable_plan_says_what_to_change(names, workers, cpus, busy_poll, warned):
    warnings = place(_instruments(*names), workers, cpus, busy_poll).warnings
    assert len(warnings) == len(warned)
    for warning, expected in zip(warnings, warned, strict=True):
        assert expected in warning


def test_an_instrument_added_later_joins_the_least_loaded_worker():
    assert least_loaded([2, 1, 1]) == 1
    assert least_loaded([0, 0]) == 0
    assert least_loaded([3, 2, 4]) == 1


@pytest.mark.parametrize(
    ("instruments", "workers", "cpus"), [([], 1, [0]), ([["book.A"]], 0, [0]), ([["book.A"]], 1, [])]
)
def test_an_empty_plan_is_a_usage_error(instruments, workers, cpus):
    with pytest.raises(UsageError, match="placement needs"):
        place(instruments, workers, cpus, busy_poll=False)
