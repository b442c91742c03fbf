"""The background recorder: frames in, redacted JSONL out, header and trailer, nothing lost silently."""

from __future__ import annotations

from feeder.client.recorder import Recorder
from feeder.core.recording import metadata, replay

AUTH = b'{"jsonrpc":"2.0","id":1,"method":"public/auth","params":{"client_id":"i","client_secret":"hush"}}'


def test_recorded_frames_replay_in_order_with_secrets_redacted(tmp_path):
    path = tmp_path / "s.jsonl"
    rec = Recorder(path, "ws://127.0.0.1:1/ws")
    rec.record(1, "out", AUTH.decode())
    rec.record(2, "in", b'{"jsonrpc":"2.0","id":1,"result":{"access_token":"tok-XYZ"}}')
    rec.record(3, "in", b"\xff\x00")
    rec.close()
    entries = list(replay(path))
    assert [(e.ts, e.dir, e.type) for e in entries] == [
        (1, "out", "text"),
        (2, "in", "text"),
        (3, "in", "binary"),
    ]
    text = path.read_text()
    assert "hush" not in text and "tok-XYZ" not in text
    assert entries[2].data == b"\xff\x00"


def test_the_trailer_counts_frames_dropped_when_the_writer_falls_behind(tmp_path):
    path = tmp_path / "s.jsonl"
    rec = Recorder(path, "ws://h/ws", flush_interval=60.0, max_backlog=2)
    for i in range(5):
        rec.record(i, "in", b"{}")
    rec.close()
    meta = metadata(path)
    assert (meta["frames"], meta["dropped"]) == (2, 3)


def test_record_only_queues_and_the_writer_thread_does_the_writing(tmp_path):
    rec = Recorder(tmp_path / "s.jsonl", "ws://h/ws", flush_interval=60.0)
    for i in range(10_000):
        rec.record(i, "in", b'{"a":1}')
    written_before_close = rec.written
    rec.close()
    assert (written_before_close, rec.written) == (0, 10_000)
