"""The heartbeat cycle: test_request, the answer that keeps the connection, the close without one."""

from __future__ import annotations

from helpers import wait_until
from sim.kit import check_response

HEARTBEAT = "heartbeat"


def _test_request(client) -> dict:
    return client.note(method=HEARTBEAT)["params"]


def test_set_heartbeat_below_the_minimum_is_refused(connect):
    error = connect().error("public/set_heartbeat", {"interval": 0.1})
    assert error["code"] == -32602 and error["data"] == {
        "reason": "must be at least 0.5 seconds",
        "param": "interval",
    }


def test_test_requests_answered_with_public_test_keep_the_connection(sim, connect):
    client = connect()
    msg = client.call("public/set_heartbeat", {"interval": 0.5})
    check_response("public/set_heartbeat", msg)
    for _ in range(3):
        assert _test_request(client) == {"type": "test_request"}
        client.result("public/test", {})
    assert len(sim.connections()) == 1 and sim.stats()["counters"].get("heartbeat_closes", 0) == 0


def test_an_unanswered_test_request_closes_the_connection(sim, connect):
    connect().result("public/set_heartbeat", {"interval": 0.5})
    wait_until(lambda: sim.connections() == [], what="the heartbeat close")
    assert sim.stats()["counters"]["heartbeat_closes"] == 1


def test_disable_heartbeat_stops_test_requests(sim, connect):
    client = connect()
    client.result("public/set_heartbeat", {"interval": 0.5})
    assert client.result("public/disable_heartbeat", {}) == "ok"
    assert [m for m in client.silent(1.5) if m.get("method") == HEARTBEAT] == []
    assert len(sim.connections()) == 1


def test_a_dropped_test_request_is_not_held_against_the_client(sim, connect):
    client = connect()
    sim.fault("drop_test_request", count=2)
    client.result("public/set_heartbeat", {"interval": 0.5})
    assert _test_request(client) == {"type": "test_request"}
    assert sim.stats()["faults"]["fault_drop_test_request_applied"] == 2
    client.result("public/test", {})
    assert len(sim.connections()) == 1


def test_a_delayed_test_request_arrives_late(sim, connect):
    client = connect()
    client.result("public/set_heartbeat", {"interval": 0.5})
    _test_request(client)
    client.result("public/test", {})
    sim.fault("delay_test_request", seconds=1.0)
    _test_request(client)
    assert sim.stats()["faults"]["fault_delay_test_request_applied"] == 1


def test_heartbeat_fault_sends_a_heartbeat_that_needs_no_answer(sim, connect):
    client = connect()
    sim.fault("heartbeat")
    assert _test_request(client) == {"type": "heartbeat"}
    assert len(sim.connections()) == 1
