"""docker-compose.yml, without a Docker engine: its structure, and each service's command run for real
against this checkout in its check mode (`--check`), and the simulator's command also started on a free
local port until it serves, then stopped.

The file is the JSON subset of YAML, so the standard library parses it (PyYAML is not a dependency).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import selectors
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from feeder import record_schema
from feeder.runtime.config import DEFAULT_CAPACITY

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = json.loads((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
CONSUMERS = ("strategy", "monitor")
RECORD_TYPE = {"book": "book", "trades": "trade", "ticker": "ticker"}
UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def local(command: list[str]) -> list[str]:
    """The service's command for this checkout: `python` is the interpreter running the tests."""
    assert command[0] == "python", command
    return [sys.executable, *command[1:]]


def run_check(service: str) -> subprocess.CompletedProcess:
    spec = SERVICES[service]
    env = {**os.environ, **spec.get("environment", {})}
    return subprocess.run(
        [*local(spec["command"]), "--check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_services_are_the_simulator_the_feeder_the_strategy_and_the_monitor():
    assert set(SERVICES) == {"sim", "feeder", "strategy", "monitor"}
    assert all(
        spec["image"] == SERVICES["feeder"]["image"] and spec["build"] == "." for spec in SERVICES.values()
    )
    assert (ROOT / "Dockerfile").is_file()


def test_feeder_url_points_at_the_simulator_service():
    url = urlparse(option(SERVICES["feeder"]["command"], "--url"))
    sim = SERVICES["sim"]["command"]
    assert (url.scheme, url.hostname, url.path) == ("ws", "sim", "/ws/api/v2")
    assert url.port == int(option(sim, "--port"))
    assert option(sim, "--host") == "0.0.0.0"  # reachable from the other containers
    assert "sim" in SERVICES["feeder"]["depends_on"]


def test_feeder_has_the_demo_credentials_in_its_environment():
    env = SERVICES["feeder"]["environment"]
    assert (env["DERIBIT_CLIENT_ID"], env["DERIBIT_CLIENT_SECRET"]) == ("demo-id", "demo-secret")


def test_consumers_share_the_feeders_ipc_namespace():
    assert SERVICES["feeder"]["ipc"] == "shareable"
    for name in CONSUMERS:
        assert SERVICES[name]["ipc"] == "service:feeder"
        assert "feeder" in SERVICES[name]["depends_on"]


def test_shm_size_holds_every_ring_of_the_feeder():
    plan = json.loads(run_check("feeder").stdout)
    need = 0
    for ring in plan["rings"]:
        stream = ring.split(".")[0]
        need += 512 + DEFAULT_CAPACITY[stream] * record_schema(RECORD_TYPE[stream]).size
    size = re.fullmatch(r"(\d+)([kmg])", SERVICES["feeder"]["shm_size"])
    assert size and int(size.group(1)) * UNITS[size.group(2)] >= 2 * need  # room for a replaced segment


def test_strategy_reaches_the_feeders_control_socket_through_a_shared_run_dir():
    feeder, strategy = SERVICES["feeder"], SERVICES["strategy"]
    run_dir = feeder["environment"]["FEEDER_RUN_DIR"]
    assert strategy["environment"]["FEEDER_RUN_DIR"] == run_dir
    mounts = {v.split(":")[1]: v.split(":")[0] for v in feeder["volumes"]}
    assert {v.split(":")[1]: v.split(":")[0] for v in strategy["volumes"]}[run_dir] == mounts[run_dir]
    assert mounts[run_dir] in COMPOSE["volumes"]


@pytest.mark.parametrize("service", ["sim", "feeder", *CONSUMERS])
def test_service_command_is_valid(service):
    done = run_check(service)
    assert done.returncode == 0, f"{shlex.join(SERVICES[service]['command'])} --check:\n{done.stderr}"
    assert json.loads(done.stdout)["ok"] is True


def test_consumers_read_rings_the_feeder_writes():
    rings = set(json.loads(run_check("feeder").stdout)["rings"])
    assert json.loads(run_check("strategy").stdout)["ring"] in rings
    assert set(json.loads(run_check("monitor").stdout)["rings"]) <= rings


def test_simulator_command_serves(tmp_path):
    command = local(SERVICES["sim"]["command"])
    command[command.index("--port") + 1] = "0"  # any free port: the test must not collide
    command[command.index("--host") + 1] = "127.0.0.1"
    proc = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        banner = _read_until(proc, b"feeder.sim serving ws://127.0.0.1:", timeout=60)
        assert b"BTC-PERPETUAL" in banner and b"ETH-PERPETUAL" in banner
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        proc.stdout.close()


def _read_until(proc: subprocess.Popen, marker: bytes, timeout: float) -> bytes:
    """Read the process's output until `marker` has appeared and its line is complete."""
    seen = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while not (marker in seen and seen.count(b"\n") >= 2):
            left = deadline - time.monotonic()
            assert left > 0, f"no {marker!r} within {timeout} s:\n{seen.decode(errors='replace')}"
            if sel.select(left):
                chunk = os.read(proc.stdout.fileno(), 65536)
                assert chunk, f"the simulator exited ({proc.wait()}):\n{seen.decode(errors='replace')}"
                seen += chunk
    return seen
