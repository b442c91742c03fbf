"""A real feeder (on its embedded simulator) mirrored to a replica instance over a real nats-server: the
replica's books are the source's through a worker SIGKILL, and orders reach the feeder from "another
host" through `FeederHandle(nats=...)` with the same at-most-once rules.

One feeder, mirror and replica serve the whole module (starting a feeder is the slow part); each test
uses its own instrument or order label.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid

import numpy as np
import pytest
from bridge.bridgekit import Proc, account
from helpers import wait_until
from runtime.feederkit import FeederProcess, cleanup_run_dir

from feeder import GAP, SNAPSHOT, AsyncFeederHandle, ExchangeError, FeederHandle, FeederNotRunning, RingReader
from feeder.bridge.natsserver import NatsServer


class Hosts:
    def __init__(self, tmp, url: str):
        tag = f"{os.getpid()}{uuid.uuid4().hex[:6]}"
        self.source, self.replica, self.url = f"fs{tag}", f"fr{tag}", url
        env = {"FEEDER_INSTANCE": self.source}
        self.feeder = FeederProcess(
            "--sim", "--instance", self.source, "--instruments", "BTC-PERPETUAL", "--workers", "1",
            "--sim-rate", "300", env=env, log=tmp / "feeder.log",
        )  # fmt: skip
        mirror = [
            "mirror",
            "--nats",
            url,
            "--instance",
            self.source,
            "--jetstream",
            "--orders",
            "--heartbeat",
            "0.2",
        ]
        replica = [
            "replicate",
            "--nats",
            url,
            "--instance",
            self.replica,
            "--source",
            self.source,
            "--jetstream",
        ]
        self.mirror = Proc([sys.executable, "-m", "feeder", *mirror], tmp / "mirror.log")
        self.replicate = Proc([sys.executable, "-m", "feeder", *replica], tmp / "replica.log")

    def handle(self) -> FeederHandle:
        return FeederHandle(self.source)

    def start(self) -> Hosts:
        self.feeder.start()
        wait_until(self._running, 60, "the feeder's worker running")
        self.mirror.start()
        self.replicate.start()
        wait_until(lambda: self._has("book.BTC"), 60, "the replica's book.BTC")
        return self

    def _running(self) -> bool:
        assert self.feeder.proc.poll() is None, self.feeder.output()
        try:
            with self.handle() as h:
                return all(w["state"] == "running" and w["connected"] for w in h.status()["workers"])
        except (FeederNotRunning, OSError):
            return False

    def _has(self, ring: str) -> bool:
        try:
            with RingReader(ring, instance=self.replica) as reader:
                return reader.write_seq > 0
        except Exception:
            return False

    def close(self) -> None:
        for proc in (self.replicate, self.mirror):
            if proc.alive():
                proc.stop()
        if self.feeder.proc is not None and self.feeder.proc.poll() is None:
            self.feeder.stop()
        for instance in (self.source, self.replica):
            cleanup_run_dir(instance)
            for path in __import__("pathlib").Path("/dev/shm").glob(f"feeder.{instance}.*"):
                path.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def hosts(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hosts")
    with NatsServer(tmp / "nats") as server:
        h = Hosts(tmp, server.url)
        try:
            yield h.start()
        finally:
            h.close()


def newest(instance: str, ring: str) -> int:
    with RingReader(ring, instance=instance) as reader:
        return reader.write_seq


def records(instance: str, ring: str, first: int, end: int) -> np.ndarray:
    with RingReader(ring, instance=instance, start="oldest") as reader:
        got = reader.read()
    return got[(got["seq"] >= first) & (got["seq"] < end)]


def test_replica_books_equal_the_source_through_a_worker_sigkill(hosts):
    with hosts.handle() as h:
        worker = h.status()["workers"][0]
    killed_at = newest(hosts.source, "book.BTC")
    os.kill(worker["pid"], signal.SIGKILL)
    with RingReader("book.BTC", instance=hosts.replica, start="oldest") as local:

        def snapshot_after_kill() -> bool:
            got = local.read()
            return bool(np.any((got["seq"] > killed_at) & (got["flags"] & SNAPSHOT > 0)))

        wait_until(snapshot_after_kill, 60, "a SNAPSHOT on the replica after the worker's restart")
        assert local.epoch_changes >= 1  # the new writer upstream shows here too
    end = min(newest(hosts.source, "book.BTC"), newest(hosts.replica, "book.BTC"))
    src = records(hosts.source, "book.BTC", killed_at, end)
    dst = records(hosts.replica, "book.BTC", killed_at, end)
    assert dst.tobytes() == src.tobytes()  # GAP copy, SNAPSHOT and every book after: byte for byte
    assert np.any(dst["flags"] & GAP) and np.any(dst["flags"] & SNAPSHOT)
    acc = account(hosts.source, hosts.replica, "book.BTC", end=end)
    assert acc.gaps == 0 and acc.missing == 0, acc


def test_an_order_from_another_host_goes_through_the_mirror_once(hosts):
    label = f"nats-{uuid.uuid4().hex[:8]}"
    with FeederHandle(hosts.source, nats=hosts.url) as remote:
        assert remote.status()["instance"] == hosts.source
        order = remote.rpc(
            "private/buy",
            {
                "instrument_name": "BTC-PERPETUAL",
                "amount": 10,
                "type": "limit",
                "price": 1000,
                "label": label,
            },
        )["order"]
        open_orders = remote.rpc("private/get_open_orders_by_label", {"currency": "BTC", "label": label})
        assert [o["order_id"] for o in open_orders] == [order["order_id"]]
        with pytest.raises(ExchangeError):
            remote.rpc("private/cancel", {"order_id": "no-such-order"})
        remote.rpc("private/cancel", {"order_id": order["order_id"]})
    with hosts.handle() as local:
        assert local.rpc("private/get_open_orders_by_label", {"currency": "BTC", "label": label}) == []


def test_the_async_handle_reaches_the_feeder_over_nats_too(hosts):
    async def status() -> dict:
        handle = await AsyncFeederHandle.connect(hosts.source, nats=hosts.url)
        try:
            return await handle.status()
        finally:
            await handle.close()

    assert asyncio.run(status())["instance"] == hosts.source


def test_an_unchanged_program_reaches_the_feeder_over_nats_from_the_environment(hosts, monkeypatch):
    monkeypatch.setenv("FEEDER_HANDLE_NATS", hosts.url)
    with FeederHandle(hosts.source) as handle:  # what consumers.strategy does on the remote host
        assert type(handle).__name__ == "RemoteFeederHandle"
        assert handle.status()["instance"] == hosts.source


def test_a_request_nobody_answers_is_refused_at_once_as_not_sent(hosts):
    with (
        FeederHandle("nobody-here", nats=hosts.url) as remote,
        pytest.raises(FeederNotRunning, match="not sent"),
    ):
        remote.rpc("private/buy", {"instrument_name": "BTC-PERPETUAL", "amount": 10, "label": "x"})
