"""SimServer itself: its own process, startup and shutdown, and the ZenWebsocket-style test helpers."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import psutil
import pytest
from helpers import kill_tree, spawn_python, wait_until
from sim.conftest import BTC
from sim.kit import Rpc
from websockets.exceptions import ConnectionClosed, InvalidStatus

from feeder.errors import ConfigError, SimControlError
from feeder.sim import SimServer


def test_the_server_runs_in_its_own_process_and_is_reaped_on_exit():
    with SimServer(instruments=[BTC], rate=0) as sim:
        pid = sim.pid
        assert pid != os.getpid() and psutil.pid_exists(pid)
        assert sim.info()["ws_url"] == sim.ws_url
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not sim.running


def test_stop_is_idempotent_and_runs_after_a_failing_block():
    sim = SimServer(instruments=[BTC], rate=0)
    with pytest.raises(RuntimeError), sim:
        raise RuntimeError("the test failed")
    sim.stop()
    assert not sim.running


def test_a_bad_config_fails_in_the_caller_naming_the_field():
    with pytest.raises(ConfigError, match="rate"):
        SimServer(rate=-1)
    with pytest.raises(ConfigError, match="instruments"):
        SimServer(instruments=["NOT-AN-INSTRUMENT"]).start()


def test_the_simulator_stops_when_its_parent_dies():
    code = (
        "import sys\nfrom feeder.sim import SimServer\n"
        "sim = SimServer(instruments=['BTC-PERPETUAL'], rate=0).start()\n"
        "print(sim.pid, flush=True)\nsys.stdin.read()\n"
    )
    parent = spawn_python(code, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        child = int(parent.stdout.readline())
        os.kill(parent.pid, signal.SIGKILL)
        wait_until(lambda: not _alive(child), what="the orphaned simulator to exit")
    finally:
        kill_tree(parent)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_rate_publishes_book_updates_on_its_own():
    with SimServer(instruments=[BTC], rate=200) as sim:
        client = Rpc(sim.ws_url)
        try:
            client.result("public/subscribe", {"channels": [f"book.{BTC}.100ms"]})
            first = client.data(f"book.{BTC}.100ms")["change_id"]
            assert client.data(f"book.{BTC}.100ms")["change_id"] > first
            wait_until(lambda: sim.stats()["changes_total"] >= 50, what="50 changes at 200/s")
        finally:
            client.close()


def test_set_rate_starts_and_stops_publishing(sim):
    sim.set_rate(500)
    wait_until(lambda: sim.stats()["changes_total"] > 20, what="publishing at 500/s")
    sim.set_rate(0)
    settled = sim.stats()["changes_total"]
    assert sim.stats()["changes_total"] == settled


def test_wait_sent_matches_text_regex_partial_json_and_predicates(sim, connect):
    client = connect()
    client.ws.send('{"jsonrpc":"2.0","id":5,"method":"public/test","params":{}}')
    client.recv()
    assert sim.wait_sent('{"jsonrpc":"2.0","id":5,"method":"public/test","params":{}}').conn == 1
    assert sim.wait_sent(re.compile(r'"id":5')).message["id"] == 5
    assert sim.wait_sent({"method": "public/test", "params": {}}).seq == 1
    assert sim.wait_sent(lambda m: m["id"] > 4).message["method"] == "public/test"


def test_wait_sent_fails_after_its_timeout_showing_what_was_sent(sim, connect):
    client = connect()
    client.result("public/test", {})
    with pytest.raises(AssertionError, match="public/test"):
        sim.wait_sent({"method": "public/hello"}, timeout=0.5)


def test_wait_sent_waits_for_a_message_sent_later(sim, connect):
    client = connect()
    client.result("public/get_time", {})
    nxt = sim.received()[-1].seq + 1
    client.send("public/hello", {"client_name": "x", "client_version": "1"})
    assert sim.wait_sent({"method": "public/hello"}, since=nxt).seq == nxt


def test_inject_puts_a_message_into_one_clients_stream(sim, connect):
    first, second = connect(), connect()
    assert sim.inject(
        {"jsonrpc": "2.0", "method": "subscription", "params": {"channel": "x", "data": 1}}, conn=2
    ) == [2]
    sim.inject("raw text", conn=2)
    assert second.recv()["params"]["channel"] == "x" and second.ws.recv(timeout=30) == "raw text"
    assert first.silent(0.3) == []


def test_connections_describe_ids_peers_subscriptions_and_auth(sim, connect):
    client = connect()
    client.auth()
    client.result("public/subscribe", {"channels": [f"book.{BTC}.100ms"]})
    (conn,) = sim.connections()
    assert conn["id"] == 1 and conn["peer"].startswith("127.0.0.1:") and conn["authenticated"]
    assert conn["subscriptions"] == [f"book.{BTC}.100ms"] and conn["client_id"] == "demo-id"


def test_disconnect_closes_one_connection_with_a_code(sim, connect):
    first, second = connect(), connect()
    assert sim.disconnect(conn=1, code=1011, reason="test") == [1]
    with pytest.raises(ConnectionClosed) as closed:
        first.recv()
    assert closed.value.rcvd.code == 1011
    assert second.result("public/test", {})["version"]


def test_stats_count_notifications_per_channel_and_connections(sim, connect):
    client = connect()
    client.result("public/subscribe", {"channels": [f"book.{BTC}.100ms"]})
    client.data(f"book.{BTC}.100ms")
    stats = sim.stats()
    assert stats["published"][f"book.{BTC}.100ms"] == 1
    assert stats["subscribers"] == {f"book.{BTC}.100ms": 1}
    assert stats["connections"] == 1 and stats["counters"]["connections_total"] == 1


def test_truth_of_a_change_outside_the_window_is_refused(sim):
    with pytest.raises(SimControlError, match="older than the truth window"):
        sim.truth(BTC, 1)


def test_connections_beyond_the_per_ip_limit_get_http_429():
    with SimServer(instruments=[BTC], rate=0, max_connections_per_ip=2) as sim:
        clients = [Rpc(sim.ws_url), Rpc(sim.ws_url)]
        try:
            with pytest.raises(InvalidStatus) as refused:
                Rpc(sim.ws_url)
            assert refused.value.response.status_code == 429
        finally:
            for c in clients:
                c.close()


def test_the_cli_serves_on_the_asked_port_and_prints_what_it_serves():
    proc = spawn_python(
        "from feeder.sim.cli import main; main()",
        "--port", "0", "--instruments", "BTC-PERPETUAL", "--rate", "0",
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = proc.stdout.readline()
        assert "feeder.sim serving ws://127.0.0.1:" in line
        port = int(re.search(r":(\d+)/ws/api/v2", line).group(1))
        client = Rpc(f"ws://127.0.0.1:{port}/ws/api/v2")
        try:
            assert client.result("public/test", {})["version"]
        finally:
            client.close()
        out = subprocess.run(
            [sys.executable, "-m", "feeder.sim", "control", "--port", str(port), "publish", "3"],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        assert '"count": 3' in out.stdout
        bad = subprocess.run(
            [sys.executable, "-m", "feeder.sim", "control", "--port", str(port), "fault", "explode"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert bad.returncode == 1 and "unknown fault 'explode'" in bad.stderr
    finally:
        kill_tree(proc)


def test_control_cli_reads_positional_and_key_value_args(sim):
    run = [sys.executable, "-m", "feeder.sim", "control", "--port", str(sim.port)]
    last = sim.publish(2, BTC)["last"][BTC]
    out = subprocess.run(
        [*run, "truth", BTC, str(last)], capture_output=True, text=True, timeout=60, check=True
    )
    assert f'"change_id": {last}' in out.stdout and '"hash"' in out.stdout
    subprocess.run([*run, "set_rate", "rate=0"], capture_output=True, timeout=60, check=True)
    assert sim.info()["rate"] == 0
