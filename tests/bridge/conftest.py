"""Fixtures for the bridge tests: a real nats-server (JetStream in a temporary directory) and two feeder
instances on this machine playing two hosts. Everything is stopped and removed even when a test fails."""

from __future__ import annotations

import shutil

import pytest
from bridge.bridgekit import Host

from feeder.bridge.natsserver import NatsServer
from feeder.runtime.rundir import run_dir


@pytest.fixture
def nats_server(request, tmp_path):
    """Extra server configuration by indirect parametrization: `parametrize("nats_server", [text], indirect=True)`."""
    server = NatsServer(tmp_path / "nats", config=getattr(request, "param", ""))
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
