"""The whole program end to end: supervisor, worker processes, rings, FeederHandle, the simulator.

Each test runs `python -m feeder` as a real process group and cleans it up whatever happens.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import numpy as np
import psutil
import pytest
from helpers import wait_until
from runtime.feederkit import FeederProcess, cleanup_run_dir
from runtime.test_logs import noise

from feeder import GAP, SNAPSHOT, FeederHandle, OutcomeUnknown, RingReader
from feeder.runtime import wire
from feeder.runtime.rundir import RunDir
from feeder.sim import SimServer
from feeder.sim.config import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

INSTRUMENTS = "BTC-PERPETUAL,ETH-PERPETUAL"
RINGS = ["book.BTC", "trades.BTC", "ticker.BTC", "book.ETH", "trades.ETH", "ticker.ETH"]


@pytest.fixture
def feeder(tmp_path, instance):
    """Start `python -m feeder --sim ...`; always killed and its run directory removed afterwards."""
    started: list[FeederProcess] = []

    def start(*args: str, workers: int | None = 2, env: dict | None = None) -> FeederProcess:
        base = ("--sim", "--instruments", INSTRUMENTS, "--workers", "2", "--sim-rate", "400")
        proc = FeederProcess(*(args or base), env=env, log=tmp_path / f"feeder{len(started)}.log")
        started.append(proc)
        return proc.start(workers=workers)

    yield start
    for proc in started:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.kill()
        for pid in proc.children():
            with __import__("contextlib").suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    for path in __import__("pathlib").Path("/dev/shm").glob(f"feeder.{instance}.*"):
        path.unlink()
    cleanup_run_dir(instance)


def _records(reader: RingReader, n: int, what: str) -> np.ndarray:
    got: list[np.ndarray] = []
    wait_until(lambda: got.append(reader.read()) or sum(map(len, got)) >= n, what=what)
    return np.concatenate(got)


def _worker(h: FeederHandle, index: int) -> dict:
    return h.status()["workers"][index]


def test_feeder_on_the_embedded_simulator_fills_every_ring_and_stops_cleanly(feeder):
    proc = feeder()
    readers = [RingReader(name, start="oldest") for name in RINGS]
    try:
        first = {
            name: _records(reader, 1, f"records in {name}")[0]
            for name, reader in zip(RINGS, readers, strict=True)
        }
        assert first["book.BTC"]["flags"] & SNAPSHOT and first["book.BTC"]["bid_count"] > 0
    finally:
        for reader in readers:
            reader.close()
    out = subprocess.run(
        [sys.executable, "-m", "feeder", "status", "--json"], capture_output=True, text=True, timeout=60
    )
    status = json.loads(out.stdout)
    assert [w["state"] for w in status["workers"]] == ["running", "running"]
    assert sorted(r["name"] for r in status["rings"]) == sorted(RINGS)
    children = proc.children()
    assert len(children) >= 3  # two workers and the simulator
    assert proc.stop() == 0
    wait_until(
        lambda: not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in children)
    )
    assert noise(proc.output()) == [], "a stop by SIGTERM is as quiet as one at --duration"


def test_a_busy_polling_worker_keeps_its_core_busy_while_it_delivers(feeder):
    """At one update per second an ordinary worker sleeps almost all the time; with --busy-poll it
    never sleeps, so over some window it uses at least half a core."""
    args = ("--sim", "--instruments", "BTC-PERPETUAL", "--workers", "1", "--sim-rate", "1", "--busy-poll")
    feeder(*args, workers=1)
    with FeederHandle() as h, RingReader("book.BTC", start="oldest") as reader:
        _records(reader, 1, "book.BTC flowing")
        worker = psutil.Process(_worker(h, 0)["pid"])

    def cpu() -> tuple[float, float]:
        times = worker.cpu_times()
        return times.user + times.system, time.monotonic()

    last = [cpu()]

    def half_a_core_over_a_window() -> bool:
        (used0, t0), (used1, t1) = last[0], cpu()
        if t1 - t0 < 0.5:
            return False
        last[0] = (used1, t1)
        return (used1 - used0) / (t1 - t0) >= 0.5

    wait_until(half_a_core_over_a_window, what="the busy-polling worker using at least half a core")


def test_a_killed_worker_is_replaced_and_readers_see_gap_then_a_new_epoch_snapshot(feeder):
    feeder()
    with FeederHandle() as h, RingReader("book.BTC") as reader:
        _records(reader, 1, "book.BTC flowing")
        old = _worker(h, 0)["pid"]
        os.kill(old, signal.SIGKILL)
        seen: list[np.ndarray] = []

        def snapshot_after_gap() -> bool:
            seen.append(reader.read())
            recs = np.concatenate(seen)
            gaps = np.flatnonzero(recs["flags"] & GAP)
            return bool(len(gaps) and np.any(recs["flags"][gaps[0] :] & SNAPSHOT))

        wait_until(snapshot_after_gap, what="GAP then SNAPSHOT on book.BTC")
        assert reader.epoch_changes >= 1
        worker = _worker(h, 0)
        assert worker["pid"] != old and worker["restarts"] == 1
        assert "SIGKILL" in worker["last_error"]


def test_a_stopped_worker_is_detected_as_hung_and_replaced(feeder):
    feeder()
    with FeederHandle() as h, RingReader("book.ETH") as reader:
        _records(reader, 1, "book.ETH flowing")
        old, epoch = _worker(h, 1)["pid"], reader.epoch
        os.kill(old, signal.SIGSTOP)
        wait_until(
            lambda: _worker(h, 1)["pid"] != old and _worker(h, 1)["state"] == "running", what="replacement"
        )
        assert "hung" in _worker(h, 1)["last_error"] or "SIGKILL" in _worker(h, 1)["last_error"]
        assert not psutil.pid_exists(old) or psutil.Process(old).status() == "zombie"
        reader.read()
        wait_until(lambda: len(reader.read()) and reader.epoch > epoch, what="data again in a new epoch")


def test_orders_go_to_a_healthy_worker_and_avoid_an_unhealthy_one(feeder):
    with SimServer(instruments=["BTC-PERPETUAL", "ETH-PERPETUAL"], rate=400) as sim:
        env = {"DERIBIT_CLIENT_ID": DEMO_CLIENT_ID, "DERIBIT_CLIENT_SECRET": DEMO_CLIENT_SECRET}
        feeder("--url", sim.ws_url, "--instruments", INSTRUMENTS, "--workers", "2", env=env)
        btc = next(c for c in sim.connections() if "book.BTC-PERPETUAL.raw" in c["subscriptions"])
        sim.fault("stall", conn=btc["id"])  # worker 0's feed goes silent: its score falls with staleness
        with FeederHandle() as h:
            wait_until(
                lambda: 0 < _worker(h, 0)["score"] < _worker(h, 1)["score"], what="worker 0 to score lower"
            )
            params = {"instrument_name": "BTC-PERPETUAL", "amount": 10, "type": "limit", "price": 1000}
            order = h.rpc("private/buy", {**params, "label": "q-1"})["order"]
            assert order["order_state"] == "open" and order["label"] == "q-1"
            assert h.rpc("private/cancel", {"order_id": order["order_id"]})["order_state"] == "cancelled"
            workers = h.status()["workers"]
            assert workers[0]["served"] == 0 and workers[1]["served"] == 2


def test_an_order_whose_worker_dies_in_flight_is_outcome_unknown_and_never_retried(feeder, instance):
    with SimServer(
        instruments=["BTC-PERPETUAL"], rate=50, credentials={DEMO_CLIENT_ID: DEMO_CLIENT_SECRET}
    ) as sim:
        env = {"DERIBIT_CLIENT_ID": DEMO_CLIENT_ID, "DERIBIT_CLIENT_SECRET": DEMO_CLIENT_SECRET}
        feeder("--url", sim.ws_url, "--instruments", "BTC-PERPETUAL", "--workers", "1", workers=1, env=env)
        with FeederHandle() as h:
            pid = _worker(h, 0)["pid"]
            sim.fault("stall")  # the order reaches the exchange, its answer never comes back
            outcome: list[BaseException] = []

            def buy() -> None:
                try:
                    params = {
                        "instrument_name": "BTC-PERPETUAL",
                        "amount": 10,
                        "type": "limit",
                        "price": 1000,
                    }
                    h.rpc("private/buy", {**params, "label": "amo-1"}, timeout=60)
                except BaseException as exc:
                    outcome.append(exc)

            thread = threading.Thread(target=buy)
            thread.start()
            sim.wait_sent({"method": "private/buy", "params": {"label": "amo-1"}}, timeout=30)
            os.kill(pid, signal.SIGKILL)
            thread.join(60)
            assert len(outcome) == 1 and isinstance(outcome[0], OutcomeUnknown)
            assert outcome[0].label == "amo-1"
            wait_until(
                lambda: _worker(h, 0)["state"] == "running" and _worker(h, 0)["connected"], what="restart"
            )
            h.rpc("public/get_time")
        sent = [
            s
            for s in sim.received()
            if isinstance(s.message, dict) and s.message.get("method") == "private/buy"
        ]
        assert [s.message["params"]["label"] for s in sent] == ["amo-1"]


def test_a_client_without_the_right_key_is_refused(feeder, tmp_path):
    feeder()
    rd = RunDir()
    assert oct(rd.key_path.stat().st_mode & 0o777) == "0o600"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(str(rd.socket_path))
        decoder = wire.FrameDecoder()
        nonce = _recv(sock, decoder)["nonce"]
        sock.sendall(wire.encode({"proof": wire.prove("not-the-key", nonce)}))
        assert _recv(sock, decoder) == {"ok": False, "error": "wrong key"}
        assert sock.recv(100) == b""  # and the connection is closed
    with FeederHandle() as h:  # the right key still works
        assert h.status()["workers"]


def _recv(sock: socket.socket, decoder: wire.FrameDecoder) -> dict:
    while True:
        frames = decoder.feed(sock.recv(65536))
        if frames:
            return frames[0]


def test_restart_after_the_supervisor_was_sigkilled(feeder, instance):
    first = feeder()
    children = first.children()
    os.kill(first.proc.pid, signal.SIGKILL)
    first.proc.wait(30)
    # workers and the simulator notice their parent is gone and exit by themselves
    wait_until(
        lambda: not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in children)
    )
    second = feeder()
    with RingReader("book.BTC") as reader:
        _records(reader, 1, "data after the restart")
    assert second.stop() == 0


def test_a_second_feeder_for_the_same_instance_is_refused(feeder, tmp_path):
    feeder()
    out = subprocess.run(
        [sys.executable, "-m", "feeder", "--sim", "--display", "off"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2 and "already running" in out.stderr


@pytest.mark.parametrize(
    ("args", "field"),
    [(["--workers", "0"], "workers"), (["--streams", "book,news"], "streams"), (["--cpus", "a"], "cpus")],
)
def test_configuration_errors_exit_2_naming_the_field(args, field):
    out = subprocess.run([sys.executable, "-m", "feeder", *args], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and field in out.stderr


def test_metrics_endpoint_and_concurrent_handles(feeder):
    feeder("--sim", "--instruments", INSTRUMENTS, "--workers", "2", "--metrics-port", "0")
    with FeederHandle() as h:
        url = h.status()["metrics_url"]
        text = urllib.request.urlopen(url, timeout=30).read().decode()
        assert 'feeder_worker_up{feeder_instance="' in text  # every family: tests/runtime/test_metrics.py
        assert 'feeder_ring_records_published_total{feeder_instance="' in text
        results: list = []

        def ask() -> None:
            results.append(h.rpc("public/get_time"))

        threads = [threading.Thread(target=ask) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(results) == 8 and all(isinstance(r, int) for r in results)
