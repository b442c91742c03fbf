"""SIGTERM while workers back off against an exchange that refuses them: the feeder stops at once and
cleanly (exit 0, no worker killed), whether the workers never connected or lost a working connection."""

from __future__ import annotations

import socket

import pytest
from helpers import wait_until
from runtime.feederkit import FeederProcess, cleanup_run_dir

from feeder.sim import SimServer

BTC = "BTC-PERPETUAL"
KILLED = "did not stop in time"


@pytest.fixture
def started(tmp_path, instance):
    procs: list[FeederProcess] = []

    def start(url: str, workers: int | None) -> FeederProcess:
        proc = FeederProcess(
            "--url", url, "--instruments", BTC, "--workers", "1", log=tmp_path / "feeder.log"
        )
        procs.append(proc)
        return proc.start(workers=workers)

    yield start
    for proc in procs:
        proc.kill()
    cleanup_run_dir(instance)


def _backing_off(proc: FeederProcess, times: int) -> bool:
    return proc.output().count("reconnecting in") >= times


def _refused_url() -> str:
    with socket.socket() as s:  # a port nobody listens on (bound and closed: refused at once)
        s.bind(("127.0.0.1", 0))
        return f"ws://127.0.0.1:{s.getsockname()[1]}/ws/api/v2"


def test_sigterm_while_never_connected_stops_the_worker_without_killing_it(started):
    proc = started(_refused_url(), workers=None)
    wait_until(lambda: _backing_off(proc, 3), 60, "the worker backing off")
    assert proc.stop(timeout=60) == 0, proc.output()
    assert KILLED not in proc.output() and "stopped" in proc.output()


def test_sigterm_while_reconnecting_after_a_lost_connection_stops_cleanly(started):
    with SimServer(instruments=[BTC], rate=20, seed=5) as sim:
        proc = started(sim.ws_url, workers=1)
        sim.fault("refuse", seconds=120, how="refuse")
        sim.fault("drop", how="reset")
        wait_until(lambda: _backing_off(proc, 2), 60, "the worker backing off")
        assert proc.stop(timeout=60) == 0, proc.output()
    assert KILLED not in proc.output()
