"""The worker's heartbeat stays cheap with many rings: per-ring figures go only when they changed, and
the supervisor keeps the last ones it got."""

from __future__ import annotations

from multiprocessing import Pipe
from pathlib import Path

import pytest

from feeder.core.restart import RestartPolicy
from feeder.runtime import worker as worker_module
from feeder.runtime.feed import Feed
from feeder.runtime.supervisor.slots import Slot
from feeder.runtime.worker import Worker, WorkerSpec

BTC = "book.BTC-PERPETUAL.raw"


def _note(data: dict) -> dict:
    return {"jsonrpc": "2.0", "method": "subscription", "params": {"channel": BTC, "data": data}}


def _book(change_id: int, prev: int | None) -> dict:
    data = {"instrument_name": "BTC-PERPETUAL", "timestamp": 1, "change_id": change_id,
            "bids": [["new", 100.0, 1.0]] if prev is None else [], "asks": []}  # fmt: skip
    data.update({"type": "snapshot"} if prev is None else {"type": "change", "prev_change_id": prev})
    return _note(data)


@pytest.fixture
def worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, instance: str):
    monkeypatch.setattr(worker_module, "RING_FIGURES_EVERY_S", 0.0)  # look at them on every heartbeat
    spec = WorkerSpec(0, instance, ("book.BTC", "trades.BTC"), "ws://127.0.0.1:9/unused", "raw", 10.0, "off",
                      None, str(tmp_path), None, "warning")  # fmt: skip
    ours, theirs = Pipe()
    w = Worker(spec, ours)
    w.feed = Feed(spec.feed_config())  # not started: its adapter is fed by hand below
    yield w
    ours.close()
    theirs.close()


def test_per_ring_figures_go_with_the_first_heartbeat_and_then_only_when_they_changed(worker: Worker):
    first = worker.health()
    assert first["ring_gaps"] == {"book.BTC": 0, "trades.BTC": 0}
    assert first["audits"]["book.BTC"] == {"passed": 0, "failed": 0, "unverifiable": 0, "last_passed_ns": 0,
                                           "crossed": 0}  # fmt: skip
    assert "ring_gaps" not in worker.health() and "audits" not in worker.health()
    adapter = worker.feed.adapter
    adapter.feed(_book(5, None), 1)
    adapter.feed(_book(8, 6), 2)  # a gap
    changed = worker.health()
    assert changed["ring_gaps"]["book.BTC"] == 1 and changed["gaps"] == 1
    assert "ring_gaps" not in worker.health()


def test_the_supervisor_keeps_the_last_per_ring_figures_until_new_ones_come():
    slot = Slot(0, ("book.BTC",), None, RestartPolicy())
    slot.on_heartbeat(
        {"connected": True, "ring_gaps": {"book.BTC": 1}, "audits": {"book.BTC": {"passed": 2}}}, 1.0
    )
    slot.on_heartbeat({"connected": True, "frames_in": 10}, 1.1)
    assert slot.health["ring_gaps"] == {"book.BTC": 1} and slot.audits() == {"book.BTC": {"passed": 2}}
    slot.on_heartbeat({"connected": True, "ring_gaps": {"book.BTC": 3}, "audits": {}}, 1.2)
    assert slot.health["ring_gaps"] == {"book.BTC": 3}
    slot.new_process(None, None, 2.0)  # a replacement process starts from nothing
    slot.on_heartbeat({"connected": True}, 2.1)
    assert "ring_gaps" not in slot.health


def test_channel_figures_go_in_full_first_then_only_the_channels_that_carried_messages(worker: Worker):
    first = worker.health()["channel_figures"]
    assert first["full"] and set(first["changed"]) == {BTC, "trades.BTC-PERPETUAL.raw"}
    assert first["changed"][BTC] == ("book.BTC", 0, 0, None)
    assert "channel_figures" not in worker.health()  # nothing arrived: nothing to say
    worker.feed.adapter.feed(_book(5, None), 1_000)
    worker.feed.adapter.feed(_book(6, 5), 2_000)
    changed = worker.health()["channel_figures"]
    assert changed == {"full": False, "changed": {BTC: ("book.BTC", 2, 2_000, None)}, "gone": []}


def test_the_supervisor_merges_channel_reports_and_keeps_channels_a_report_leaves_out():
    slot = Slot(0, ("book.BTC",), None, RestartPolicy())
    report = {"full": True, "changed": {BTC: ("book.BTC", 3, 1, None)}, "gone": []}
    slot.on_heartbeat({"connected": True, "channel_figures": report}, 1.0)
    slot.on_heartbeat({"connected": True}, 1.1)
    assert "channel_figures" not in slot.health
    assert slot.channels.figures(2)[BTC]["messages"] == 3
