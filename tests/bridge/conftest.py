"""Fixtures for the bridge tests: a real nats-server (JetStream in a temporary directory) and two feeder
instances on this machine playing two hosts. Everything is stopped and removed even when a test fails."""

from __future__ import annotations

import shutil

import pytest
from bridge.bridgekit import Host

from feeder.bridge.natsserver import NatsServer
from feeder.runtime.rundir import run_dir

# small enough that a paused replica is dropped as a slow consumer within a second or two
SLOW_CONSUMER = 'max_payload: 262144\nmax_pending: 524288\nwrite_deadline: "500ms"'


@pytest.fixture
def nats_server(tmp_path):
    server = NatsServer(tmp_path / "nats", config=SLOW_CONSUMER)
    with server:
        yield server


@pytest.fixture
def host(tmp_path, instance, nats_server):
    """Source instance `<test instance>s`, replica instance `<test instance>r`."""
    h = Host(tmp_path, nats_server.url, source=f"{instance[:28]}s", replica=f"{instance[:28]}r")
    yield h
    h.close()
    for name in (h.source, h.replica):
        shutil.rmtree(run_dir(name), ignore_errors=True)
