"""Ring names <-> Deribit channels."""

from __future__ import annotations

import pytest

from feeder.errors import ConfigError, UsageError
from feeder.exchanges.deribit.channels import ChannelConfig, ChannelMap


@pytest.mark.parametrize(
    ("ring", "channel", "record_type", "instrument"),
    [
        ("book.BTC", "book.BTC-PERPETUAL.raw", "book", "BTC-PERPETUAL"),
        ("book.ETH", "book.ETH-PERPETUAL.raw", "book", "ETH-PERPETUAL"),
        ("book.BTC-27DEC24", "book.BTC-27DEC24.raw", "book", "BTC-27DEC24"),
        ("trades.ETH-PERPETUAL", "trades.ETH-PERPETUAL.raw", "trade", "ETH-PERPETUAL"),
        ("ticker.BTC", "ticker.BTC-PERPETUAL.raw", "ticker", "BTC-PERPETUAL"),
        ("book.BTC-27DEC24-50000-C", "book.BTC-27DEC24-50000-C.raw", "book", "BTC-27DEC24-50000-C"),
    ],
)
def test_ring_names_map_to_deribit_channels(ring, channel, record_type, instrument):
    route = ChannelMap(authenticated=True).route(ring)
    assert (route.channel, route.record_type, route.instrument, route.ring) == (
        channel,
        record_type,
        instrument,
        ring,
    )


def test_interval_is_raw_with_credentials_and_100ms_without():
    assert ChannelMap(authenticated=True).route("book.BTC").channel == "book.BTC-PERPETUAL.raw"
    assert ChannelMap(authenticated=False).route("book.BTC").channel == "book.BTC-PERPETUAL.100ms"
    assert ChannelMap(authenticated=True).route("book.BTC").needs_auth
    assert not ChannelMap(authenticated=False).route("book.BTC").needs_auth


def test_an_explicit_interval_wins_over_the_automatic_choice():
    config = ChannelConfig(interval="agg2")
    assert ChannelMap(config, authenticated=True).route("trades.BTC").channel == "trades.BTC-PERPETUAL.agg2"


def test_aliases_are_configurable_and_ring_names_use_them():
    config = ChannelConfig(aliases={"SOL": "SOL_USDC-PERPETUAL"})
    channels = ChannelMap(config)
    assert channels.route("book.SOL").channel == "book.SOL_USDC-PERPETUAL.100ms"
    assert channels.route("book.BTC").instrument == "BTC"  # the default aliases were replaced
    assert channels.ring_name("book", "SOL_USDC-PERPETUAL") == "book.SOL"
    assert ChannelMap().ring_name("trades", "BTC-PERPETUAL") == "trades.BTC"
    assert ChannelMap().ring_name("book", "BTC-27DEC24") == "book.BTC-27DEC24"


def test_grouped_books_use_the_group_depth_channel():
    route = ChannelMap(ChannelConfig(book_depth=10, book_group="10")).route("book.ETH")
    assert route.channel == "book.ETH-PERPETUAL.10.10.100ms" and route.grouped


def test_a_grouped_snapshot_deeper_than_the_rings_levels_is_refused_never_cut():
    with pytest.raises(ConfigError, match=r"at most the 10 levels per side of ring 'book\.ETH'") as caught:
        ChannelMap(ChannelConfig(book_depth=20)).route("book.ETH")
    assert caught.value.field == "book_depth" and "depth of 25" in str(caught.value)
    route = ChannelMap(ChannelConfig(book_depth=20, depth={"book.ETH": 25})).route("book.ETH")
    assert route.channel == "book.ETH-PERPETUAL.none.20.100ms" and route.record_type == "book25"


def test_book_depth_comes_from_the_exact_ring_name_then_the_first_matching_glob():
    config = ChannelConfig(depth={"book.BTC*": 50, "book.*": 25, "book.ETH": 10})
    channels = ChannelMap(config)
    assert channels.route("book.BTC").record_type == "book50"
    assert channels.route("book.BTC-27DEC26").record_type == "book50"
    assert channels.route("book.ETH").record_type == "book"
    assert channels.route("book.SOL_USDC-PERPETUAL").record_type == "book25"
    assert channels.route("trades.BTC").record_type == "trade"
    assert ChannelMap().route("book.BTC").record_type == "book"


def test_two_rings_on_one_channel_are_refused():
    with pytest.raises(ConfigError, match="one ring per channel"):
        ChannelMap().routes(["book.BTC", "book.BTC-PERPETUAL"])


def test_routes_are_keyed_by_channel():
    routes = ChannelMap().routes(["book.BTC", "trades.BTC", "ticker.ETH"])
    assert list(routes) == [
        "book.BTC-PERPETUAL.100ms",
        "trades.BTC-PERPETUAL.100ms",
        "ticker.ETH-PERPETUAL.100ms",
    ]


@pytest.mark.parametrize(
    ("ring", "error"),
    [
        ("quotes.BTC", ConfigError),
        ("book", UsageError),
        ("Book.BTC", UsageError),
        ("book.BTC.raw", ConfigError),
    ],
)
def test_bad_ring_names_are_refused(ring, error):
    with pytest.raises(error):
        ChannelMap().route(ring)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"interval": "1s"}, "interval"),
        ({"book_depth": 5}, "book_depth"),
        ({"book_group": "3"}, "book_group"),
        ({"aliases": {"BTC": "BTC PERP"}}, "aliases['BTC']"),
        ({"depth": {"book.BTC": 20}}, "depth['book.BTC']"),
        ({"depth": {"book.BTC": "50"}}, "depth['book.BTC']"),
        ({"depth": {"book.BTC": True}}, "depth['book.BTC']"),
        ({"depth": {"trades.BTC": 25}}, "depth['trades.BTC']"),
    ],
)
def test_bad_channel_config_names_the_field(fields, field):
    with pytest.raises(ConfigError) as caught:
        ChannelConfig(**fields)
    assert caught.value.field == field
