"""Each fault does what it says, on a real socket, and nothing else."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

import orjson
import pytest
from helpers import wait_until
from sim.conftest import BTC, ETH
from sim.kit import Rpc
from websockets.exceptions import ConnectionClosed, InvalidStatus

from feeder.errors import SimControlError

RAW = f"book.{BTC}.raw"


def _book_client(connect) -> tuple[Rpc, int]:
    client = connect()
    client.auth()
    client.result("public/subscribe", {"channels": [RAW]})
    return client, client.data(RAW)["change_id"]


def _texts(client: Rpc, n: int) -> list[str]:
    return [client.ws.recv(timeout=30) for _ in range(n)]


def test_drop_closes_with_the_chosen_code(sim, connect):
    client = connect()
    sim.fault("drop", code=4001, reason="bye")
    with pytest.raises(ConnectionClosed) as closed:
        client.recv()
    assert closed.value.rcvd.code == 4001 and closed.value.rcvd.reason == "bye"


def test_drop_with_reset_aborts_without_a_close_frame(sim, connect):
    client = connect()
    sim.fault("drop", how="reset")
    with pytest.raises(ConnectionClosed) as closed:
        client.recv()
    assert closed.value.rcvd is None


def test_stall_sends_nothing_but_keeps_the_connection_then_resume_continues_with_a_gap(sim, connect):
    client, snapshot_id = _book_client(connect)
    sim.fault("stall")
    sim.publish(5, BTC)
    assert client.silent(0.5) == []
    assert sim.connections()[0]["stalled"]
    sim.fault("resume")
    last = sim.publish(1, BTC)["last"][BTC]
    data = client.data(RAW)
    assert data["change_id"] == last and data["prev_change_id"] != snapshot_id


def test_stall_keeps_reading_requests(sim, connect):
    client = connect()
    sim.fault("stall", seconds=0.5)
    rid = client.send("public/test", {})
    assert sim.wait_sent({"id": rid, "method": "public/test"}).conn == 1


def test_gap_skips_the_next_change_and_the_chain_shows_it(sim, connect):
    client, snapshot_id = _book_client(connect)
    sim.fault("gap", instrument=BTC)
    first = sim.publish(1, BTC)["last"][BTC]
    second = sim.publish(1, BTC)["last"][BTC]
    data = client.data(RAW)
    assert data["change_id"] == second and data["prev_change_id"] == first != snapshot_id
    assert sim.truth(BTC, first)["change_id"] == first


def test_gap_on_one_instrument_leaves_the_other_alone(sim, connect):
    client = connect()
    client.auth()
    client.result("public/subscribe", {"channels": [f"book.{ETH}.raw"]})
    eth = client.data(f"book.{ETH}.raw")["change_id"]
    sim.fault("gap", instrument=BTC, count=3)
    last = sim.publish(1, ETH)["last"][ETH]
    data = client.data(f"book.{ETH}.raw")
    assert data["prev_change_id"] == eth and data["change_id"] == last


def test_duplicate_sends_the_next_book_message_twice(sim, connect):
    client, _ = _book_client(connect)
    sim.fault("duplicate", instrument=BTC)
    sim.publish(1, BTC)
    first, second = _texts(client, 2)
    assert first == second


def test_reorder_swaps_the_next_two_book_messages(sim, connect):
    client, _ = _book_client(connect)
    sim.fault("reorder", instrument=BTC)
    sim.publish(2, BTC)
    a, b = (json.loads(t)["params"]["data"] for t in _texts(client, 2))
    assert a["change_id"] > b["change_id"] and a["prev_change_id"] == b["change_id"]


def test_malformed_sends_a_frame_that_is_not_json(sim, connect):
    client = connect()
    sim.fault("malformed")
    with pytest.raises(ValueError):
        json.loads(client.ws.recv(timeout=30))


def test_malformed_with_an_instrument_cuts_the_next_book_message(sim, connect):
    client, _ = _book_client(connect)
    sim.fault("malformed", instrument=BTC)
    sim.publish(1, BTC)
    (text,) = _texts(client, 1)
    assert text.startswith('{"jsonrpc":"2.0","method":"subscription"')
    with pytest.raises(ValueError):
        json.loads(text)


def test_wrong_types_sends_strings_where_numbers_belong(sim, connect):
    client, _ = _book_client(connect)
    sim.fault("wrong_types", instrument=BTC)
    last = sim.publish(1, BTC)["last"][BTC]
    data = client.data(RAW)
    assert data["change_id"] == str(last)
    assert all(isinstance(e[2], str) for e in data["bids"] + data["asks"])


def test_nan_price_puts_the_nan_token_in_the_next_book_message(sim, connect):
    client, _ = _book_client(connect)
    sim.fault("nan_price", instrument=BTC)
    sim.publish(1, BTC)
    (text,) = _texts(client, 1)
    assert "NaN" in text
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(text)
    entry = (json.loads(text)["params"]["data"]["bids"] + json.loads(text)["params"]["data"]["asks"])[0]
    assert entry[1] != entry[1]


def test_negative_price_negates_the_first_price(sim, connect):
    client, _ = _book_client(connect)
    sim.fault("negative_price", instrument=BTC)
    sim.publish(1, BTC)
    data = client.data(RAW)
    assert (data["bids"] + data["asks"])[0][1] < 0


def test_huge_frame_is_as_big_as_asked_and_closes_a_client_with_a_size_limit(sim, connect):
    big = connect()
    small = connect(max_size=2**20)
    sim.fault("huge_frame", conn=1, size=3 * 2**20)
    sim.fault("huge_frame", conn=2, size=3 * 2**20)
    assert len(big.ws.recv(timeout=30)) == 3 * 2**20
    with pytest.raises(ConnectionClosed) as closed:
        small.recv()
    assert closed.value.sent.code == 1009


def test_unknown_method_and_unknown_channel_notifications(sim, connect):
    client = connect()
    sim.fault("unknown_method")
    sim.fault("unknown_channel")
    assert client.recv()["method"] == "sim/unknown_method"
    assert client.recv()["params"]["channel"] == "sim.unknown_channel"


def test_rate_limit_fault_answers_10028_then_disconnects(sim, connect):
    client = connect()
    sim.fault("rate_limit")
    msg = client.call("public/test", {})
    assert msg["error"]["code"] == 10028 and msg["error"]["message"] == "too_many_requests"
    with pytest.raises(ConnectionClosed):
        client.recv()


def test_rate_limit_fault_can_answer_with_a_null_id_as_deribit_sometimes_does(sim, connect):
    client = connect()
    sim.fault("rate_limit", id="null")
    client.send("public/test", {})
    msg = client.recv()
    assert "id" in msg and msg["id"] is None and msg["error"]["code"] == 10028
    with pytest.raises(ConnectionClosed):
        client.recv()


def test_rate_limit_fault_refuses_new_connections_for_refuse_s_after_its_close(sim, connect):
    first, bystander = connect(), connect()
    sim.fault("rate_limit", conn=sim.connections()[0]["id"], refuse_s=1.0)
    assert first.call("public/test", {})["error"]["code"] == 10028
    with pytest.raises(InvalidStatus) as refused:
        Rpc(sim.ws_url)
    assert refused.value.response.status_code == 429
    assert bystander.result("public/test", {})["version"]  # connections already open are not touched
    wait_until(lambda: _http_ok(sim.http_url), what="the refusal window to end")
    connect().result("public/test", {})
    counters = sim.stats()["counters"]
    assert counters["rate_limit_refusal_windows"] == 1 and counters["refused_429"] >= 1


def test_rate_limit_fault_refuses_nothing_by_default(sim, connect):
    client = connect()
    sim.fault("rate_limit")
    assert client.call("public/test", {})["error"]["code"] == 10028
    assert connect().result("public/test", {})["version"]
    assert sim.stats()["counters"].get("refused_429", 0) == 0


def test_refuse_429_refuses_new_websocket_and_http_requests_for_a_while(sim, connect):
    sim.fault("refuse", seconds=1.0, how="429")
    with pytest.raises(InvalidStatus) as refused:
        Rpc(sim.ws_url)
    assert refused.value.response.status_code == 429
    with pytest.raises(urllib.error.HTTPError) as http:
        urllib.request.urlopen(f"{sim.http_url}/public/get_time", timeout=30)
    assert http.value.code == 429
    wait_until(lambda: _http_ok(sim.http_url), what="the refusal to end")
    connect().result("public/test", {})


def _http_ok(url: str) -> bool:
    try:
        urllib.request.urlopen(f"{url}/public/get_time", timeout=30)
    except urllib.error.HTTPError:
        return False
    return True


def test_refuse_at_tcp_level_keeps_open_connections_and_listens_again(sim, connect):
    client = connect()
    sim.fault("refuse", seconds=1.0, how="refuse")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", sim.port), timeout=30).close()
    assert client.result("public/test", {})["version"]
    wait_until(lambda: _can_connect(sim.port), what="the port to listen again")


def _can_connect(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=30).close()
    except ConnectionRefusedError:
        return False
    return True


def test_faults_count_in_stats(sim, connect):
    connect()
    sim.fault("heartbeat")
    sim.fault("gap", instrument=BTC)
    assert sim.stats()["faults"] == {"fault_heartbeat": 1, "fault_gap": 1}


def test_unknown_faults_and_bad_params_are_refused_with_what_is_allowed(sim):
    with pytest.raises(SimControlError, match=r"known faults: .*gap"):
        sim.fault("explode")
    with pytest.raises(SimControlError, match="needs 'instrument'"):
        sim.fault("gap")
    with pytest.raises(SimControlError, match="unknown instrument"):
        sim.fault("gap", instrument="NOPE")
    with pytest.raises(SimControlError, match="'how' must be one of"):
        sim.fault("drop", how="gently")
    with pytest.raises(SimControlError, match="no connection 99"):
        sim.fault("drop", conn=99)
    with pytest.raises(SimControlError, match="'id' must be one of"):
        sim.fault("rate_limit", id="7")
    with pytest.raises(SimControlError, match="refuse_s must be a finite number"):
        sim.fault("rate_limit", refuse_s=-1)


def _named(connect, name: str) -> tuple[Rpc, int]:
    client, snapshot_id = _book_client(connect)
    client.result("public/hello", {"client_name": name, "client_version": "1.0"})
    return client, snapshot_id


def test_a_fault_can_target_connections_by_their_hello_client_name(sim, connect):
    a, a_id = _named(connect, "feeder-w0-a")
    b, b_id = _named(connect, "feeder-w0-b")
    assert {c["client_name"] for c in sim.connections()} == {"feeder-w0-a", "feeder-w0-b"}
    result = sim.fault("gap", instrument=BTC, client="feeder-w0-a")
    assert result["conns"] == [c["id"] for c in sim.connections() if c["client_name"] == "feeder-w0-a"]
    first = sim.publish(1, BTC)["last"][BTC]
    second = sim.publish(1, BTC)["last"][BTC]
    assert b.data(RAW)["change_id"] == first  # b gets every change
    assert a.data(RAW)["prev_change_id"] == first  # a skipped `first`: its next change shows the gap
    assert (a_id, b.data(RAW)["change_id"]) == (b_id, second)


def test_a_client_glob_targets_every_connection_it_matches_and_a_name_nobody_has_is_refused(sim, connect):
    _named(connect, "feeder-w0-a")
    _named(connect, "feeder-w0-b")
    assert len(sim.fault("heartbeat", client="feeder-w0-*")["conns"]) == 2
    assert len(sim.disconnect(client="feeder-w0-b", how="reset")) == 1
    with pytest.raises(SimControlError, match=r"no open connection of client 'feeder-w9-\*'.*feeder-w0-a"):
        sim.fault("stall", client="feeder-w9-*")
    with pytest.raises(SimControlError, match="conn or client, not both"):
        sim.fault("stall", conn=1, client="feeder-w0-a")
