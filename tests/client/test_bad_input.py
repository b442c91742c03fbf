"""Every bad-input fault of the simulator is survived: counted, logged (throttled), never fatal."""

from __future__ import annotations

import pytest
from client.clientkit import BOOK, INSTRUMENT, Events, Notes, RaisingNotes, call, config, hooks, run, until

from feeder.client import Client

BOOK_FAULTS = ["gap", "duplicate", "reorder", "wrong_types", "negative_price"]


def _survives(sim, fault: str, params: dict, *, max_frame_size: int = 1 << 20, notes: Notes | None = None):
    async def body():
        events = Events()
        client = Client(
            config(sim, max_frame_size=max_frame_size),
            on_notification=notes,
            on_event=events,
            hooks=hooks(),
        )
        await client.connect()
        try:
            await client.subscribe([BOOK])
            await call(sim.fault, fault, **params)  # frame faults are sent now, book faults on the next
            await call(sim.publish, 3)
            if fault == "huge_frame" and max_frame_size < params["size"]:
                await events.wait("connected", 2)
            await notes.flowing(sim, BOOK, INSTRUMENT)
            return await client.request("public/get_time"), client.metrics(), events
        finally:
            await client.close()

    notes = notes or Notes()
    return run(body())


def test_a_frame_that_is_not_json_is_counted_and_skipped(sim):
    result, metrics, events = _survives(sim, "malformed", {})
    assert (
        isinstance(result, int) and metrics["bad_input"]["malformed_json"] == 1 and metrics["connects"] == 1
    )
    assert events.named("bad_input")[0].data["kind"] == "malformed_json"


def test_a_cut_book_message_is_counted_and_skipped(sim):
    _, metrics, _ = _survives(sim, "malformed", {"instrument": INSTRUMENT})
    assert metrics["bad_input"]["malformed_json"] == 1 and metrics["connects"] == 1


def test_a_frame_over_max_frame_size_costs_a_reconnect_not_the_worker(sim):
    result, metrics, _ = _survives(sim, "huge_frame", {"size": 2 * 1024 * 1024})
    assert isinstance(result, int) and metrics["bad_input"]["oversized_frame"] == 1
    assert metrics["connects"] == 2 and metrics["subscriptions"] == 1


def test_a_large_frame_within_max_frame_size_is_delivered(sim):
    _, metrics, _ = _survives(sim, "huge_frame", {"size": 2 * 1024 * 1024}, max_frame_size=4 * 1024 * 1024)
    assert metrics["connects"] == 1 and "oversized_frame" not in metrics["bad_input"]


@pytest.mark.parametrize("fault", ["unknown_method", "unknown_channel"])
def test_unexpected_notifications_are_passed_on_not_dropped(sim, fault):
    result, metrics, _ = _survives(sim, fault, {})
    assert isinstance(result, int) and metrics["bad_input"] == {} and metrics["connects"] == 1


@pytest.mark.parametrize("fault", BOOK_FAULTS)
def test_book_faults_reach_the_adapter_without_disturbing_the_connection(sim, fault):
    result, metrics, _ = _survives(sim, fault, {"instrument": INSTRUMENT})
    assert isinstance(result, int) and metrics["connects"] == 1 and metrics["bad_input"] == {}


def test_a_nan_price_is_not_json_so_the_message_is_counted_and_skipped(sim):
    # orjson follows RFC 8259: the bare token NaN makes the frame malformed; the adapter sees the
    # next message's prev_change_id jump and resynchronises that book.
    result, metrics, _ = _survives(sim, "nan_price", {"instrument": INSTRUMENT})
    assert (
        isinstance(result, int) and metrics["bad_input"] == {"malformed_json": 1} and metrics["connects"] == 1
    )


def test_a_handler_that_raises_is_counted_and_the_stream_goes_on(sim):
    notes = RaisingNotes()
    _, metrics, events = _survives(sim, "duplicate", {"instrument": INSTRUMENT}, notes=notes)
    assert len(notes.messages) >= 2 and metrics["handler_errors"] == len(notes.messages)
    assert metrics["bad_input"]["handler_error"] == len(notes.messages)
    assert len(events.named("bad_input")) == 1  # logged once, the rest counted


def test_json_that_is_not_an_object_is_counted(sim):
    async def body():
        client = Client(config(sim))
        await client.connect()
        try:
            await call(sim.inject, "[1, 2, 3]")
            await until(lambda: client.metrics()["bad_input"].get("not_an_object") == 1, "the count")
            return await client.request("public/get_time")
        finally:
            await client.close()

    assert isinstance(run(body()), int)


def test_an_error_with_a_null_id_is_counted_as_one_not_as_an_unmatched_answer(sim):
    stray = {"jsonrpc": "2.0", "id": None, "error": {"code": 11050, "message": "bad_request"}}

    async def body():
        events = Events()
        client = Client(config(sim), on_event=events)
        await client.connect()
        try:
            await call(sim.inject, stray)
            await events.wait("bad_input")
            return await client.request("public/get_time"), client.metrics(), events
        finally:
            await client.close()

    result, metrics, events = run(body())
    assert isinstance(result, int) and metrics["errors_without_id"] == {"11050": 1}
    assert metrics["bad_input"] == {"error_without_id": 1} and metrics["unmatched_answers"] == 0
    assert (
        metrics["rate_limit_events"] == {} and events.named("bad_input")[0].data["kind"] == "error_without_id"
    )
