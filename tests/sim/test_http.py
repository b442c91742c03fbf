"""HTTP GET /api/v2/<method>: the same JSON as over WebSocket, with HTTP auth and status codes."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

import pytest
from sim.conftest import BTC
from sim.kit import check_error, check_response

from feeder.sim import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET


def _get(url: str, headers: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _strip(msg: dict) -> dict:
    return {k: v for k, v in msg.items() if k not in ("id", "usIn", "usOut", "usDiff")}


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("public/get_instruments", {"currency": "BTC", "kind": "future"}),
        ("public/get_instrument", {"instrument_name": BTC}),
        ("public/get_currencies", {}),
        ("public/get_order_book", {"instrument_name": BTC, "depth": 5}),
        ("public/get_index_price", {"index_name": "btc_usd"}),
        ("public/status", {}),
    ],
)
def test_http_answers_what_the_websocket_answers(sim, connect, method, params):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    status, over_http = _get(f"{sim.http_url}/{method}?{query}")
    over_ws = connect().call(method, params)
    assert status == 200 and "id" not in over_http
    check_response(method, over_http)
    if method == "public/get_order_book":  # the index and timestamp move with the clock
        assert over_http["result"]["bids"] == over_ws["result"]["bids"]
    else:
        assert _strip(over_http) == _strip(over_ws)


def test_http_get_instruments_with_currency_any_lists_futures_and_options(sim):
    status, msg = _get(f"{sim.http_url}/public/get_instruments?currency=any")
    assert status == 200
    check_response("public/get_instruments", msg)
    kinds = {(i["kind"], i["settlement_period"]) for i in msg["result"]}
    assert {("future", "perpetual"), ("future", "week"), ("future", "month"), ("option", "day")} <= kinds


def test_http_get_instruments_of_a_currency_without_inverse_instruments_is_empty(sim):
    assert _get(f"{sim.http_url}/public/get_instruments?currency=SOL")[1]["result"] == []


def test_http_errors_are_deribit_error_objects_with_status_400(sim):
    status, msg = _get(f"{sim.http_url}/public/get_instruments?currency=BTC&expired=maybe")
    assert status == 400
    check_error(msg)
    assert msg["error"]["data"] == {"reason": "must be a boolean (true or false)", "param": "expired"}
    assert _get(f"{sim.http_url}/public/nope")[1]["error"]["code"] == -32601


def test_websocket_only_methods_are_refused_over_http(sim):
    status, msg = _get(f"{sim.http_url}/public/subscribe?channels=book.BTC-PERPETUAL.100ms")
    assert status == 400 and msg["error"]["code"] == 11050


def test_http_private_methods_take_a_bearer_token_or_basic_credentials(sim):
    url = f"{sim.http_url}/private/get_open_orders_by_instrument?instrument_name={BTC}"
    status, msg = _get(url)
    assert status == 400 and msg["error"]["code"] == 10000
    status, grant = _get(
        f"{sim.http_url}/public/auth?grant_type=client_credentials"
        f"&client_id={DEMO_CLIENT_ID}&client_secret={DEMO_CLIENT_SECRET}"
    )
    assert status == 200
    token = grant["result"]["access_token"]
    assert _get(url, {"Authorization": f"Bearer {token}"})[1]["result"] == []
    basic = base64.b64encode(f"{DEMO_CLIENT_ID}:{DEMO_CLIENT_SECRET}".encode()).decode()
    assert _get(url, {"Authorization": f"Basic {basic}"})[1]["result"] == []
    assert _get(url, {"Authorization": "Bearer nope"})[1]["error"]["code"] == 13009


def test_unknown_paths_get_404(sim):
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"http://127.0.0.1:{sim.port}/nothing/here", timeout=30)
    assert err.value.code == 404


def test_a_large_http_response_arrives_whole(sim):
    status, msg = _get(f"{sim.http_url}/public/get_order_book?instrument_name={BTC}&depth=1000")
    assert status == 200 and len(msg["result"]["bids"]) > 50
