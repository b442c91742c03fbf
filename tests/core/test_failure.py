"""Error classification and explanations: recoverable vs rate-limited vs fatal, each with advice."""

from __future__ import annotations

import ssl

import pytest
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK, InvalidStatus, InvalidURI
from websockets.frames import Close
from websockets.http11 import Response

from feeder.core.failure import Category, asks_to_slow_down, explain, refused
from feeder.errors import ConfigError, ConnectionLost, ExchangeError, RemoteProtocolError


def _status(code: int) -> InvalidStatus:
    return InvalidStatus(Response(code, "x", Headers(), b""))


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "Connection refused"),
        ConnectionResetError(104, "reset"),
        TimeoutError("opening handshake"),
        ConnectionClosedError(None, None),
        ConnectionClosedOK(Close(1000, "bye"), Close(1000, "bye"), True),
        RemoteProtocolError("garbage"),
        ConnectionLost("public/test", sent=True),
    ],
)
def test_network_failures_are_recoverable(error):
    assert explain(error).category is Category.RECOVERABLE


@pytest.mark.parametrize("status", [500, 502, 503, 408])
def test_server_side_handshake_failures_are_recoverable(status):
    assert explain(_status(status)).category is Category.RECOVERABLE


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_client_side_handshake_rejections_are_fatal(status):
    why = explain(_status(status))
    assert why.fatal and f"HTTP {status}" in why.message


def test_a_429_handshake_waits_instead_of_hammering():
    assert explain(_status(429)).category is Category.RATE_LIMITED


@pytest.mark.parametrize("method", ["public/get_time", None])  # None: Deribit's answer with "id": null
def test_too_many_requests_says_what_happened_and_what_to_change(method):
    why = explain(ExchangeError(10028, "too_many_requests", method=method))
    assert why.category is Category.RATE_LIMITED
    assert "ran out of request credits" in why.message and "closes the session" in why.message
    assert "refilled" in why.advice
    assert all(w in why.advice for w in ("lower the request rate", "tier", "cost table"))


@pytest.mark.parametrize(
    ("code", "name", "slow_down"),
    [
        (10028, "too_many_requests", True),
        (10047, "matching_engine_queue_full", True),
        (10066, "too_many_concurrent_requests", True),
        (10040, "retry", False),
        (10041, "settlement_in_progress", False),
        (13028, "temporarily_unavailable", False),
        (11051, "system_maintenance", False),
        (10009, "not_enough_funds", False),
    ],
)
def test_only_out_of_credits_and_overload_ask_to_slow_down(code, name, slow_down):
    error = ExchangeError(code, name)
    assert asks_to_slow_down(error) is slow_down
    assert (explain(error).category is Category.RATE_LIMITED) is slow_down


def test_an_overloaded_exchange_says_to_send_fewer_requests_at_once():
    why = explain(ExchangeError(10047, "matching_engine_queue_full", method="private/buy"))
    assert "overloaded" in why.message and "fewer requests at once" in why.advice


def test_settlement_in_progress_is_waited_out_not_fatal():
    assert explain(ExchangeError(10041, "settlement_in_progress")).category is Category.RECOVERABLE


@pytest.mark.parametrize(
    ("error", "turned_away"),
    [
        (_status(429), True),
        (ConnectionRefusedError(111, "Connection refused"), True),
        (_status(503), False),
        (ConnectionResetError(104, "reset"), False),
        (TimeoutError("opening handshake"), False),
        (ExchangeError(10028, "too_many_requests"), False),
    ],
)
def test_refused_names_a_connect_the_server_turned_away(error, turned_away):
    assert refused(error) is turned_away


@pytest.mark.parametrize(
    ("code", "name"), [(13004, "invalid_credentials"), (13009, "unauthorized"), (13021, "forbidden")]
)
def test_bad_credentials_are_fatal_and_say_what_to_check(code, name):
    why = explain(ExchangeError(code, name, method="public/auth"))
    assert why.fatal and "API key" in why.advice and "public/auth" in why.message


@pytest.mark.parametrize(
    ("code", "name"), [(11051, "system_maintenance"), (13028, "temporarily_unavailable"), (10040, "retry")]
)
def test_exchange_asking_to_retry_is_recoverable(code, name):
    assert explain(ExchangeError(code, name)).category is Category.RECOVERABLE


def test_other_refusals_of_a_setup_request_are_fatal():
    assert explain(ExchangeError(-32602, "Invalid params", {"param": "interval"})).fatal


def test_bad_config_and_bad_urls_are_fatal():
    assert explain(ConfigError("url", "http://x", "expected ws://")).fatal
    assert explain(InvalidURI("nope://", "bad scheme")).fatal


def test_tls_verification_failure_is_fatal():
    assert explain(ssl.SSLCertVerificationError("certificate verify failed")).fatal


def test_oversized_frames_are_named():
    why = explain(ConnectionClosedError(None, Close(1009, "frame too big")))
    assert why.category is Category.RECOVERABLE and "max_frame_size" in why.message


def test_the_explanation_reads_as_one_sentence_with_advice():
    text = str(explain(ExchangeError(10028, "too_many_requests")))
    assert text.startswith("exchange error 10028 too_many_requests: the account ran out of request credits")
    assert "closes the session (rate_limited). The client drains" in text
