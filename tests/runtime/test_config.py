"""Config validation: every bad field is named, with the value and what is allowed."""

from __future__ import annotations

import pytest

from feeder.errors import ConfigError
from feeder.runtime.config import PRODUCTION_URL, TESTNET_URL, build, load_file


def test_defaults_connect_to_production_public_data():
    config = build()
    assert config.ws_url == PRODUCTION_URL and not config.sim
    assert build(overrides={"testnet": True}).ws_url == TESTNET_URL


@pytest.mark.parametrize(
    ("field", "value", "hint"),
    [
        ("workers", 0, "1 to 32"),
        ("workers", 33, "connections per IP"),
        ("streams", "book,quotes", "subset of"),
        ("url", "http://x", "ws://"),
        ("interval", "1s", "raw, 100ms"),
        ("capacity", {"book": 1000}, "power of two"),
        ("cancel_on_disconnect", "maybe", "connection, account or off"),
        ("heartbeat_interval", 0.5, "at least 1"),
        ("instance", "a b", "instance name"),
        ("duration", -1, "positive"),
        ("busy_poll", "yes", "true or false"),
        ("audit_interval", -1, "0 for no audits"),
        ("liveness_interval", -0.5, "0 for no active liveness"),
        ("liveness_timeout", 0.4, "more than liveness_interval (0.5)"),
        ("crossed", "ignore", "resync or flag"),
        ("tier", 5, "1, 2, 3 or 4"),
        ("redundancy", 3, "1 (one connection per worker) or 2"),
    ],
)
def test_bad_values_name_the_field_and_what_is_allowed(field, value, hint):
    with pytest.raises(ConfigError) as info:
        build(overrides={field: value})
    assert info.value.field.startswith(field) and hint in str(info.value)


def test_redundancy_counts_against_the_connections_per_ip():
    assert build(overrides={"workers": 16, "redundancy": 2}).redundancy == 2
    with pytest.raises(ConfigError, match="at most 16 with redundancy 2") as info:
        build(overrides={"workers": 17, "redundancy": 2})
    assert info.value.field == "workers"


def test_unknown_keys_in_the_file_are_refused_with_the_file_name(tmp_path):
    path = tmp_path / "feeder.toml"
    path.write_text("workers = 2\nwrokers = 3\n")
    with pytest.raises(ConfigError) as info:
        load_file(path)
    assert "wrokers" in str(info.value) and str(path) in str(info.value)


def test_cli_flags_override_the_file_and_lists_accept_commas(tmp_path):
    path = tmp_path / "feeder.toml"
    path.write_text('workers = 3\ninstruments = ["BTC-PERPETUAL"]\n[capacity]\nbook = 1024\n')
    config = build(load_file(path), {"workers": 1, "streams": "book,ticker", "instruments": None})
    assert config.workers == 1 and config.streams == ("book", "ticker")
    assert config.instruments == ("BTC-PERPETUAL",) and config.capacity["book"] == 1024


def test_invalid_toml_is_a_config_error(tmp_path):
    path = tmp_path / "feeder.toml"
    path.write_text("workers = = 2\n")
    with pytest.raises(ConfigError, match="valid TOML"):
        load_file(path)


def test_audits_crossed_books_and_the_tier_have_their_defaults_and_flags():
    from feeder.cli.run import _overrides, parser

    config = build()
    assert (config.audit_interval, config.crossed, config.tier) == (60.0, "resync", 4)
    ns = parser().parse_args(["--audit-interval", "0", "--crossed", "flag", "--tier", "2"])
    config = build(overrides=_overrides(ns))
    assert (config.audit_interval, config.crossed, config.tier) == (0, "flag", 2)


def test_liveness_has_its_defaults_and_flags():
    from feeder.cli.run import _overrides, parser

    config = build()
    assert (config.liveness_interval, config.liveness_timeout) == (0.5, 1.5)
    ns = parser().parse_args(["--liveness-interval", "0.2", "--liveness-timeout", "0.8"])
    config = build(overrides=_overrides(ns))
    assert (config.liveness_interval, config.liveness_timeout) == (0.2, 0.8)
