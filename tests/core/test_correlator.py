"""Request correlation: ids, answers, errors, individual deadlines, failing everything on a drop."""

from __future__ import annotations

from feeder.core.correlator import Correlator, outcome
from feeder.errors import ExchangeError, RemoteProtocolError


def test_ids_increase_and_are_never_reused():
    c = Correlator()
    ids = [c.track("m", 1.0, 0.0).id for _ in range(3)]
    c.fail_all()
    assert ids == [1, 2, 3] and c.track("m", 1.0, 0.0).id == 4


def test_an_answer_resolves_its_request_once():
    c = Correlator()
    p = c.track("public/get_time", 1.0, 0.0)
    assert c.resolve(p.id) is p
    assert c.resolve(p.id) is None
    assert len(c) == 0


def test_answers_with_unknown_or_non_integer_ids_resolve_to_nothing_and_never_raise():
    c = Correlator()
    p = c.track("public/get_time", 1.0, 0.0)
    assert c.resolve(99) is None and c.resolve("1") is None and c.resolve(None) is None
    assert c.resolve(p.id) is p


def test_a_result_is_returned_as_is():
    assert outcome({"jsonrpc": "2.0", "id": 1, "result": 1626993723846}, "public/get_time") == (
        1626993723846,
        None,
    )


def test_an_error_object_becomes_an_exchange_error_with_code_message_and_data():
    msg = {
        "jsonrpc": "2.0",
        "id": 7,
        "error": {
            "code": -32602,
            "message": "Invalid params",
            "data": {"reason": "value must be a list", "param": "channels"},
        },
    }
    result, err = outcome(msg, "public/subscribe")
    assert result is None and isinstance(err, ExchangeError)
    assert (err.code, err.message, err.method) == (-32602, "Invalid params", "public/subscribe")
    assert err.data == {"reason": "value must be a list", "param": "channels"}


def test_an_answer_without_result_or_valid_error_is_a_protocol_error():
    _, err = outcome({"id": 1, "error": "nope"}, "m")
    assert isinstance(err, RemoteProtocolError)


def test_each_request_expires_at_its_own_deadline():
    c = Correlator()
    slow = c.track("slow", 5.0, 0.0)
    fast = c.track("fast", 1.0, 0.0)
    assert c.next_deadline() == 1.0
    assert c.expire(0.5) == []
    assert c.expire(1.0) == [fast]
    assert c.next_deadline() == 5.0
    assert c.expire(10.0) == [slow]
    assert c.timeouts == 2


def test_answered_requests_do_not_expire_later():
    c = Correlator()
    p = c.track("m", 1.0, 0.0)
    c.resolve(p.id)
    assert c.next_deadline() is None
    assert c.expire(2.0) == []


def test_fail_all_hands_back_every_pending_request_with_its_sent_flag():
    c = Correlator()
    sent = c.track("private/buy", 1.0, 0.0)
    sent.sent = True
    unsent = c.track("private/sell", 1.0, 0.0)
    failed = c.fail_all()
    assert {(p.method, p.sent) for p in failed} == {("private/buy", True), ("private/sell", False)}
    assert len(c) == 0 and c.next_deadline() is None
    assert unsent.sent is False


def test_a_given_deadline_counts_time_already_spent_but_the_timeout_is_reported_as_asked():
    c = Correlator()
    p = c.track("m", 5.0, now=3.0, deadline=5.0)
    assert (p.deadline, p.timeout) == (5.0, 5.0)
    assert c.expire(5.0) == [p]
