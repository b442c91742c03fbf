"""docker-compose.yml, without a Docker engine: YAML checked against the Compose Specification's JSON schema
(tests/reference/compose-spec), its structure (who shares which IPC namespace, run directory, server),
each service's command run for real against this checkout in its check mode (`--check`; nats-server's
`-t` for the nats service's configuration file), and the simulator's command started on a free local
port until it serves, then stopped. No image is built here.
"""

from __future__ import annotations

import contextlib
import functools
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

import jsonschema
import pytest
import yaml

from feeder.bridge.natsserver import server_binary

ROOT = Path(__file__).resolve().parent.parent
TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE = yaml.safe_load(TEXT)
SCHEMA = json.loads((ROOT / "tests" / "reference" / "compose-spec" / "compose-spec.json").read_text())
SERVICES = COMPOSE["services"]
FEEDER_IMAGE = ("sim", "feeder", "strategy", "monitor", "mirror", "replica", "strategy-remote")
CONSUMERS = ("strategy", "monitor", "mirror")  # in the feeder's IPC namespace
RECORD_TYPE = {"book": "book", "trades": "trade", "ticker": "ticker"}
UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def local(command: list[str]) -> list[str]:
    """The service's command for this checkout: `python` is the interpreter running the tests."""
    assert command[0] == "python", command
    return [sys.executable, *command[1:]]


@functools.cache
def run_check(service: str) -> subprocess.CompletedProcess:
    spec = SERVICES[service]
    env = {**os.environ, **spec.get("environment", {})}
    return subprocess.run(
        [*local(spec["command"]), "--check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def plan(service: str) -> dict:
    done = run_check(service)
    assert done.returncode == 0, f"{shlex.join(SERVICES[service]['command'])} --check:\n{done.stderr}"
    return json.loads(done.stdout)


def test_the_file_is_yaml_that_follows_the_compose_specification():
    assert not TEXT.lstrip().startswith("{")  # written as YAML, with comments, not as JSON
    validator = jsonschema.validators.validator_for(SCHEMA)(SCHEMA)
    problems = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(COMPOSE)]
    assert problems == []


def test_the_schema_check_catches_a_wrong_field():
    broken = {**COMPOSE, "services": {**SERVICES, "feeder": {**SERVICES["feeder"], "shm_size": ["256m"]}}}
    validator = jsonschema.validators.validator_for(SCHEMA)(SCHEMA)
    assert any("shm_size" in e.absolute_path for e in validator.iter_errors(broken))


def test_services_are_two_hosts_around_one_nats_server():
    assert set(SERVICES) == {*FEEDER_IMAGE, "nats"}
    for name in FEEDER_IMAGE:
        assert SERVICES[name]["image"] == SERVICES["feeder"]["image"] and SERVICES[name]["build"] == "."
    assert (ROOT / "Dockerfile").is_file()
    assert "nats" in (ROOT / "Dockerfile").read_text()  # the image has the nats extra


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


def test_the_feeder_host_shares_its_ipc_namespace_and_the_remote_host_has_its_own():
    assert SERVICES["feeder"]["ipc"] == "shareable"
    for name in CONSUMERS:
        assert SERVICES[name]["ipc"] == "service:feeder" and "feeder" in SERVICES[name]["depends_on"]
    assert SERVICES["replica"]["ipc"] == "shareable"
    assert SERVICES["strategy-remote"]["ipc"] == "service:replica"


def _shm_need() -> int:
    feeder = plan("feeder")
    assert feeder["shm_bytes"] == sum(feeder["ring_bytes"].values())
    return feeder["shm_bytes"]


@pytest.mark.parametrize("service", ["feeder", "replica"])
def test_shm_size_holds_every_ring_of_the_feeder(service):
    size = re.fullmatch(r"(\d+)([kmg])", SERVICES[service]["shm_size"])
    assert (
        size and int(size.group(1)) * UNITS[size.group(2)] >= 2 * _shm_need()
    )  # room for a replaced segment


def test_strategy_and_mirror_reach_the_feeders_control_socket_through_a_shared_run_dir():
    feeder = SERVICES["feeder"]
    run_dir = feeder["environment"]["FEEDER_RUN_DIR"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in feeder["volumes"]}
    assert mounts[run_dir] in COMPOSE["volumes"]
    for name in ("strategy", "mirror"):
        spec = SERVICES[name]
        assert spec["environment"]["FEEDER_RUN_DIR"] == run_dir
        assert {v.split(":")[1]: v.split(":")[0] for v in spec["volumes"]}[run_dir] == mounts[run_dir]


def test_mirror_and_replica_meet_at_the_nats_service_and_the_remote_strategy_orders_through_it():
    port = int(
        re.search(r"^port:\s*(\d+)", (ROOT / "deploy" / "nats" / "feeder.conf").read_text(), re.M).group(1)
    )
    mirror, replica = plan("mirror"), plan("replica")
    for got in (mirror, replica):
        url = urlparse(got["nats"][0])
        assert (url.scheme, url.hostname, url.port) == ("nats", "nats", port)
    assert (
        mirror["source"] == replica["source"] and mirror["stream"] == replica["stream"]
    )  # JetStream on both
    assert mirror["orders"] is not None
    remote = urlparse(SERVICES["strategy-remote"]["environment"]["FEEDER_HANDLE_NATS"])
    assert (remote.hostname, remote.port) == ("nats", port)
    assert {"nats", "feeder"} <= set(SERVICES["mirror"]["depends_on"])


def test_the_nats_services_configuration_file_is_valid_for_nats_server():
    spec = SERVICES["nats"]
    config = option(spec["command"], "--config")
    mounts = {v.split(":")[1]: v.split(":")[0] for v in spec["volumes"]}
    done = subprocess.run(
        [server_binary(), "-c", str(ROOT / mounts[config]), "-t"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("service", FEEDER_IMAGE)
def test_service_command_is_valid(service):
    assert plan(service)["ok"] is True


def test_consumers_read_rings_the_feeder_writes():
    rings = set(plan("feeder")["rings"])
    assert plan("strategy")["ring"] in rings and plan("strategy-remote")["ring"] in rings
    assert set(plan("monitor")["rings"]) <= rings
    assert plan("replica")["rings"] == plan("mirror")["rings"] == ["*"]  # every ring reaches the replica


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
