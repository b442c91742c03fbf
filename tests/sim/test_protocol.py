"""The JSON-RPC envelope and the supporting methods, checked against the official spec over a socket."""

from __future__ import annotations

import json

import pytest
from sim.kit import check_error, check_response


def test_hello_answers_with_the_version_and_usin_usout_envelope(connect):
    msg = connect().call("public/hello", {"client_name": "tests", "client_version": "1.0"})
    check_response("public/hello", msg)
    assert msg["usOut"] >= msg["usIn"] and msg["usDiff"] == msg["usOut"] - msg["usIn"]
    assert msg["testnet"] is True


def test_test_and_get_time_and_status_match_their_response_schemas(connect):
    client = connect()
    for method in ("public/test", "public/get_time", "public/status"):
        check_response(method, client.call(method, {}))


def test_test_with_expected_result_exception_answers_11094(connect):
    msg = connect().call("public/test", {"expected_result": "exception"})
    check_error(msg)
    assert msg["error"]["code"] == 11094 and msg["error"]["message"] == "internal_server_error"


def test_unknown_method_answers_32601_method_not_found(connect):
    msg = connect().call("public/no_such_method", {})
    check_error(msg)
    assert msg["error"]["code"] == -32601 and msg["error"]["message"] == "Method not found"


def test_invalid_json_answers_parse_error_without_an_id(connect):
    client = connect()
    client.ws.send("{this is not json")
    msg = client.recv()
    assert msg["error"]["code"] == -32700 and msg["error"]["message"] == "Parse error"
    assert "id" not in msg


def test_a_batch_array_is_a_bad_request(connect):
    client = connect()
    client.ws.send(json.dumps([{"jsonrpc": "2.0", "id": 1, "method": "public/test"}]))
    assert client.recv()["error"]["code"] == 11050


def test_missing_required_param_names_it_in_error_data(connect):
    msg = connect().call("public/get_instruments", {"kind": "future"})
    check_error(msg)
    assert msg["error"]["code"] == -32602
    assert msg["error"]["data"] == {"reason": "value required", "param": "currency"}


def test_wrong_param_type_names_the_param_and_the_expected_type(connect):
    error = connect().error("public/set_heartbeat", {"interval": "ten"})
    assert error["code"] == -32602 and error["data"] == {"reason": "must be a number", "param": "interval"}


def test_value_outside_the_allowed_list_is_refused(connect):
    error = connect().error("public/get_instruments", {"currency": "BTC", "kind": "banana"})
    assert error["code"] == -32602 and error["data"]["param"] == "kind"
    assert "future" in error["data"]["reason"]


def test_no_params_at_all_for_a_method_that_needs_them_is_missing_params(connect):
    assert connect().error("public/get_instruments")["code"] == -32000


def test_string_ids_are_echoed(connect):
    client = connect()
    client.ws.send(json.dumps({"jsonrpc": "2.0", "id": "abc-1", "method": "public/test", "params": {}}))
    assert client.recv()["id"] == "abc-1"


def test_get_currencies_matches_the_spec(connect):
    msg = connect().call("public/get_currencies", {})
    check_response("public/get_currencies", msg)
    assert {c["currency"] for c in msg["result"]} == {"BTC", "ETH"}


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("public/ticker", {"instrument_name": "BTC-PERPETUAL"}),
        ("public/get_order_book", {"instrument_name": "BTC-PERPETUAL", "depth": 10}),
        ("public/get_index_price", {"index_name": "eth_usd"}),
        ("public/get_instrument", {"instrument_name": "ETH-PERPETUAL"}),
        ("public/get_instruments", {"currency": "ETH", "kind": "option"}),
    ],
)
def test_market_data_methods_match_their_schemas_and_examples(connect, method, params):
    check_response(method, connect().call(method, params))


def test_last_trades_match_the_spec_after_trades_happened(sim, connect):
    sim.publish(300, "BTC-PERPETUAL")
    msg = connect().call(
        "public/get_last_trades_by_instrument", {"instrument_name": "BTC-PERPETUAL", "count": 5}
    )
    check_response("public/get_last_trades_by_instrument", msg)
    assert len(msg["result"]["trades"]) == 5


def test_an_option_ticker_carries_greeks_and_ivs(connect):
    client = connect()
    option = next(i for i in client.result("public/get_instruments", {"currency": "BTC", "kind": "option"}))
    ticker = client.result("public/ticker", {"instrument_name": option["instrument_name"]})
    assert set(ticker["greeks"]) == {"delta", "gamma", "vega", "theta", "rho"} and ticker["mark_iv"] > 0
