"""Recording format: lines, redaction of credentials, replay order and timing, metadata."""

from __future__ import annotations

import time

import orjson

from feeder.core import recording
from feeder.core.recording import REDACTED, format_entry, metadata, redact_text, redact_url, replay

AUTH_REQUEST = (
    '{"jsonrpc":"2.0","id":9,"method":"public/auth","params":{"grant_type":"client_credentials",'
    '"client_id":"abc","client_secret":"s3cr3t"}}'
)
AUTH_ANSWER = (
    '{"jsonrpc":"2.0","id":9,"result":{"access_token":"tok-A","refresh_token":"tok-R","expires_in":900,'
    '"scope":"connection","token_type":"bearer"}}'
)
SIGNED = '{"method":"public/auth","params":{"grant_type":"client_signature","client_id":"abc","signature":"deadbeef","nonce":"n"}}'


def test_auth_secrets_are_redacted_at_any_depth():
    for text, secrets in (
        (AUTH_REQUEST, ["s3cr3t"]),
        (AUTH_ANSWER, ["tok-A", "tok-R"]),
        (SIGNED, ["deadbeef"]),
    ):
        out = redact_text(text)
        assert all(s not in out for s in secrets) and REDACTED in out


def test_non_secret_fields_survive_redaction():
    out = orjson.loads(redact_text(AUTH_ANSWER))
    assert out["result"]["expires_in"] == 900 and out["result"]["token_type"] == "bearer"


def test_frames_without_secrets_are_kept_byte_for_byte():
    frame = '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"book.BTC-PERPETUAL.100ms","data":{"x":1.50}}}'
    assert redact_text(frame) is frame


def test_malformed_text_with_a_secret_is_masked_by_pattern():
    out = redact_text('{"client_secret": "s3cr3t", "broken')
    assert "s3cr3t" not in out


def test_urls_lose_user_info_and_query_values():
    assert redact_url("wss://user:pw@host:9443/ws?key=abc&x") == f"wss://host:9443/ws?key={REDACTED}&x"


def test_binary_frames_round_trip_through_base64(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_bytes(format_entry(1, "in", "binary", b"\x00\xff"))
    assert [e.data for e in replay(path)] == [b"\x00\xff"]


def _session(path, gaps_ns=(0, 50_000_000, 100_000_000)):
    t0 = 1_700_000_000_000_000_000
    lines = [recording.header("wss://host/ws", t0)]
    lines += [
        format_entry(t0 + g, "in" if i % 2 else "out", "text", f'{{"n":{i}}}') for i, g in enumerate(gaps_ns)
    ]
    lines.append(recording.trailer(t0 + gaps_ns[-1], len(gaps_ns), 2))
    path.write_bytes(b"".join(lines))
    return t0


def test_replay_yields_frames_in_order_without_meta(tmp_path):
    path = tmp_path / "s.jsonl"
    _session(path)
    assert [(e.dir, e.data) for e in replay(path)] == [
        ("out", '{"n":0}'),
        ("in", '{"n":1}'),
        ("out", '{"n":2}'),
    ]


def test_replay_at_recorded_timing_takes_at_least_the_recorded_span(tmp_path):
    path = tmp_path / "s.jsonl"
    _session(path)
    start = time.monotonic()
    list(replay(path, speed=1.0))
    assert time.monotonic() - start >= 0.1


def test_replay_speed_divides_the_recorded_gaps(tmp_path):
    path = tmp_path / "s.jsonl"
    _session(path, gaps_ns=(0, 400_000_000))
    start = time.monotonic()
    list(replay(path, speed=4.0))
    assert time.monotonic() - start >= 0.1


def test_metadata_counts_frames_and_reports_the_span_and_drops(tmp_path):
    path = tmp_path / "s.jsonl"
    t0 = _session(path)
    meta = metadata(path)
    assert (meta["frames"], meta["frames_in"], meta["frames_out"]) == (3, 1, 2)
    assert meta["by_type"] == {"out.text": 2, "in.text": 1}
    assert (meta["first_ts"], meta["last_ts"], meta["duration_s"]) == (t0, t0 + 100_000_000, 0.1)
    assert meta["header"]["format"] == recording.FORMAT_VERSION and meta["dropped"] == 2


def test_a_torn_last_line_is_skipped(tmp_path):
    path = tmp_path / "s.jsonl"
    _session(path)
    with open(path, "ab") as f:
        f.write(b'{"ts": 5, "dir": "in", "ty')
    assert metadata(path)["frames"] == 3
