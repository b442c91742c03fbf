"""public/auth over a socket: the three grants, wrong credentials, token lifetimes and scopes."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from helpers import wait_until
from sim.kit import Rpc, check_error, check_response

from feeder.sim import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, SimServer
from feeder.sim.auth import sign

PRIVATE = ("private/get_open_orders_by_instrument", {"instrument_name": "BTC-PERPETUAL"})


@pytest.fixture
def short_tokens() -> Iterator[SimServer]:
    with SimServer(instruments=["BTC-PERPETUAL"], rate=0, token_ttl=1.0) as sim:
        yield sim


def test_client_credentials_grant_matches_the_spec_and_unlocks_private_methods(connect):
    client = connect()
    msg = client.call(
        "public/auth",
        {
            "grant_type": "client_credentials",
            "client_id": DEMO_CLIENT_ID,
            "client_secret": DEMO_CLIENT_SECRET,
        },
    )
    check_response("public/auth", msg)
    assert msg["result"]["token_type"] == "bearer" and msg["result"]["expires_in"] == 900
    assert msg["result"]["scope"].startswith("connection")
    assert client.result(*PRIVATE) == []


def test_client_signature_grant_checks_the_hmac(connect):
    client = connect()
    ts = int(time.time() * 1000)
    params = {"grant_type": "client_signature", "client_id": DEMO_CLIENT_ID, "timestamp": ts, "nonce": "n1"}
    bad = client.call("public/auth", {**params, "signature": sign("wrong-secret", ts, "n1")})
    check_error(bad)
    assert bad["error"]["code"] == 13004
    good = client.call("public/auth", {**params, "data": "", "signature": sign(DEMO_CLIENT_SECRET, ts, "n1")})
    check_response("public/auth", good)


def test_a_stale_signature_timestamp_is_refused(connect):
    ts = int(time.time() * 1000) - 120_000
    params = {"grant_type": "client_signature", "client_id": DEMO_CLIENT_ID, "timestamp": ts, "nonce": "n"}
    error = connect().error("public/auth", {**params, "signature": sign(DEMO_CLIENT_SECRET, ts, "n")})
    assert error["code"] == 13004


def test_wrong_credentials_answer_13004_invalid_credentials(connect):
    error = connect().error(
        "public/auth",
        {"grant_type": "client_credentials", "client_id": DEMO_CLIENT_ID, "client_secret": "nope"},
    )
    assert error == {"message": "invalid_credentials", "code": 13004}


def test_refresh_token_grant_issues_new_tokens_once(connect):
    client = connect()
    first = client.auth()
    second = client.result(
        "public/auth", {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    )
    assert second["access_token"] != first["access_token"]
    again = client.error(
        "public/auth", {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    )
    assert again["code"] == 13004


def test_an_expired_token_gives_13009_until_refreshed(short_tokens):
    client = Rpc(short_tokens.ws_url)
    try:
        grant = client.auth()
        assert grant["expires_in"] == 1
        assert client.result(*PRIVATE) == []
        wait_until(lambda: "error" in client.call(*PRIVATE), what="the token to expire")
        error = client.error(*PRIVATE)
        assert error["code"] == 13009 and error["data"]["reason"] == "token_expired"
        client.result("public/auth", {"grant_type": "refresh_token", "refresh_token": grant["refresh_token"]})
        assert client.result(*PRIVATE) == []
    finally:
        client.close()


def test_a_session_token_works_on_another_connection_and_a_connection_token_does_not(connect):
    first, second = connect(), connect()
    session = first.auth(scope="session:s1")
    assert session["scope"].startswith("session:s1")
    assert second.result(PRIVATE[0], {**PRIVATE[1], "access_token": session["access_token"]}) == []
    connection = first.auth()
    error = second.error(PRIVATE[0], {**PRIVATE[1], "access_token": connection["access_token"]})
    assert error["code"] == 13009


def test_private_method_without_auth_is_unauthorized(connect):
    msg = connect().call(*PRIVATE)
    check_error(msg)
    assert msg["error"]["code"] == 13009 and msg["error"]["message"] == "unauthorized"


def test_auth_secrets_are_redacted_in_what_the_simulator_records(sim, connect):
    connect().auth()
    sent = sim.wait_sent({"method": "public/auth"})
    assert DEMO_CLIENT_SECRET not in sent.text and sent.message["params"]["client_secret"] == "***"
