"""Client config: every bad field named with its value and what is allowed; secrets never in repr."""

from __future__ import annotations

import pytest

from feeder.client import ClientConfig, RateLimit
from feeder.errors import ConfigError

URL = "wss://test.example.com/ws/api/v2"


def test_defaults_are_valid():
    config = ClientConfig(url=URL)
    assert config.heartbeat == "ping_pong" and config.max_retries is None


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("url", "http://host/ws", "ws://host"),
        ("url", "ws://", "ws://host"),
        ("url", "ws://host:99999/ws", "port between 0 and 65535"),
        ("url", 42, "URL string"),
        ("connect_timeout", 0, "number > 0"),
        ("initial_delay", -1.0, "number > 0"),
        ("max_backoff", 0.01, "≥ initial_delay"),
        ("max_retries", -1, "integer ≥ 0"),
        ("max_retries", 2.5, "integer ≥ 0"),
        ("jitter", 1.5, "between 0 and 1"),
        ("jitter", float("nan"), "number ≥ 0"),
        ("heartbeat", "deribbit", "binance, deribit, none, ping_pong"),
        ("heartbeat_interval", 0, "number > 0"),
        ("max_missed_heartbeats", 0, "integer ≥ 1"),
        ("liveness_interval", 0, "number > 0"),
        ("liveness_timeout", -1.0, "number > 0"),
        ("liveness_timeout", 0.5, "> liveness_interval (0.5)"),
        ("transport", "libwebsockets", "auto, websockets, picows"),
        ("reconnect_on_error", "yes", "True or False"),
        ("request_timeout", "5", "number > 0"),
        ("max_frame_size", 10, "integer ≥ 1024"),
        ("latency_window", 0, "integer ≥ 1"),
        ("record_to", "/no/such/dir/session.jsonl", "existing directory"),
        ("rate_limit", {"capacity": 5}, "RateLimit"),
    ],
)
def test_a_bad_field_is_named_with_its_value_and_what_is_allowed(field, value, allowed):
    with pytest.raises(ConfigError) as info:
        ClientConfig(**{"url": URL, field: value})
    assert info.value.field == field and allowed in info.value.allowed


def test_headers_must_map_strings_to_strings_and_the_error_hides_their_values():
    with pytest.raises(ConfigError) as info:
        ClientConfig(url=URL, headers={"Authorization": 5})
    assert info.value.field == "headers" and "5" not in str(info.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("capacity", 0),
        ("refill_per_s", -1),
        ("cost", "cheap"),
        ("max_queue", 0),
        ("shared_dir", "/no/such/dir"),
        ("shared_name", "a/b"),
    ],
)
def test_rate_limit_fields_are_validated_too(field, value):
    kwargs = {"capacity": 100.0, "refill_per_s": 10.0, field: value}
    with pytest.raises(ConfigError) as info:
        RateLimit(**kwargs)
    assert info.value.field == f"rate_limit.{field}"


def test_repr_hides_header_values_and_url_credentials():
    config = ClientConfig(
        url="wss://user:hunter2@host/ws?token=abc123",
        headers={"Authorization": "Bearer s3cr3t", "X-Key": "k-42"},
    )
    text = repr(config)
    for secret in ("hunter2", "abc123", "s3cr3t", "k-42"):
        assert secret not in text
    assert "Authorization" in text and "wss://host/ws" in text


def test_record_to_accepts_a_path_in_an_existing_directory(tmp_path):
    assert ClientConfig(url=URL, record_to=tmp_path / "s.jsonl").record_to == tmp_path / "s.jsonl"


@pytest.mark.parametrize(
    ("buckets", "field"),
    [
        ({"default": (1.0, 1.0)}, "rate_limit.buckets"),
        ({"matching": (1.0,)}, "rate_limit.buckets.matching"),
        ({"matching": (0, 1.0)}, "rate_limit.buckets.matching.capacity"),
        ({"matching": (1.0, -1)}, "rate_limit.buckets.matching.refill_per_s"),
    ],
)
def test_named_buckets_are_validated(buckets, field):
    with pytest.raises(ConfigError) as info:
        RateLimit(capacity=10.0, refill_per_s=1.0, buckets=buckets)
    assert info.value.field == field
