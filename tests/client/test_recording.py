"""Recording round trip: every frame in and out, in order, credentials redacted, through replay."""

from __future__ import annotations

import orjson
from client.clientkit import BOOK, INSTRUMENT, Notes, auth_with, call, config, hooks, run, until

from feeder.client import Client, metadata, replay


def test_a_recorded_session_replays_every_frame_in_order_without_credentials(sim, tmp_path):
    path = tmp_path / "session.jsonl"

    async def body():
        notes = Notes()
        client = Client(
            config(sim, record_to=path),
            on_notification=notes,
            hooks=hooks(on_connected=auth_with("client-id", "client-secret")),
        )
        await client.connect()
        try:
            await client.subscribe([BOOK])
            last = (await call(sim.publish, 5))["last"][INSTRUMENT]
            await until(lambda: notes.has_change(BOOK, last), "the published change")
            await client.request("public/get_time")
        finally:
            await client.close()
        return client.metrics()

    metrics = run(body())
    entries = list(replay(path))
    out = [e for e in entries if e.dir == "out"]
    sent = sim.received()
    assert len(out) == len(sent) and "public/auth" in out[1].data
    # the simulator's log masks the secret its own way ("***"), so the auth frame is compared apart
    assert [e.data for i, e in enumerate(out) if i != 1] == [m.text for i, m in enumerate(sent) if i != 1]
    assert len([e for e in entries if e.dir == "in"]) == metrics["frames_in"]
    text = path.read_text()
    assert "client-secret" not in text
    answers = [orjson.loads(e.data) for e in entries if e.dir == "in" and "access_token" in e.data]
    assert answers[0]["result"]["access_token"] == answers[0]["result"]["refresh_token"] == "<redacted>"
    meta = metadata(path)
    assert (meta["frames_in"], meta["frames_out"], meta["dropped"]) == (
        metrics["frames_in"],
        metrics["frames_out"],
        0,
    )
    assert meta["header"]["url"] == sim.ws_url and meta["duration_s"] > 0
    assert [e.ts for e in entries] == sorted(e.ts for e in entries)
