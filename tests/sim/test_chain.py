"""Option chains as Deribit lists them: the expiry schedule, strikes, tick grids, patterns, the model."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest
from sim.kit import schema, validate

from feeder.errors import ConfigError
from feeder.sim import pricing
from feeder.sim.catalogue import build_catalogue
from feeder.sim.chain import ChainSize, listing, option_expiries, strikes
from feeder.sim.clock import DAY_MS
from feeder.sim.instruments import REF_PRICE, to_date
from feeder.sim.market import Market

NOW = int(datetime(2026, 12, 1, 12, tzinfo=UTC).timestamp() * 1000)  # a Tuesday
FULL = ChainSize(None, None)


def test_option_expiries_are_dailies_weeklies_monthlies_and_quarterlies_at_0800():
    expiries = option_expiries(NOW)
    got = [(e.day.isoformat(), e.period) for e in expiries]
    assert got[:7] == [
        ("2026-12-02", "day"),
        ("2026-12-03", "day"),
        ("2026-12-04", "week"),
        ("2026-12-05", "day"),
        ("2026-12-11", "week"),
        ("2026-12-18", "week"),
        ("2026-12-25", "month"),  # the December quarterly
    ]
    assert {e.cls for e in expiries} == {"day", "week", "month", "quarter"}
    assert all(to_date(e.ms).hour == 8 for e in expiries) and len(expiries) == 12


def test_a_full_chain_has_deribits_size_spacing_and_both_sides():
    listed = listing(NOW, REF_PRICE, FULL, NOW)
    options = Counter(i.base for i in listed if i.kind == "option")
    assert 650 <= options["BTC"] <= 750 and 380 <= options["ETH"] <= 480
    assert strikes("BTC", "day", 90_000.0, None)[:3] == [84_000, 84_500, 85_000]
    assert strikes("BTC", "quarter", 90_000.0, None)[1] - strikes("BTC", "quarter", 90_000.0, None)[0] == 5000
    assert strikes("ETH", "week", 3_000.0, 3) == [2950, 3000, 3050]
    names = {i.name for i in listed}
    assert all(n.replace("-C", "-P") in names for n in names if n.endswith("-C"))


def test_a_chain_size_keeps_the_nearest_expiries_and_strikes():
    listed = listing(NOW, REF_PRICE, ChainSize(2, 3), NOW)
    options = [i for i in listed if i.kind == "option"]
    assert len(options) == 2 * 2 * 3 * 2  # expiries x currencies x strikes x call/put
    assert {to_date(i.expiry_ms).day for i in options} == {2, 3}
    assert sorted({i.strike for i in options if i.base == "BTC"}) == [89_500.0, 90_000.0, 90_500.0]


def test_the_schedule_moves_on_at_0800_utc():
    before = {i.name for i in listing(NOW, REF_PRICE, ChainSize(3, 1), NOW)}
    after = {i.name for i in listing(NOW + DAY_MS, REF_PRICE, ChainSize(3, 1), NOW + DAY_MS)}
    assert "BTC-2DEC26-90000-C" in before and "BTC-2DEC26-90000-C" not in after
    assert "BTC-5DEC26-90000-C" in after - before


def test_instrument_objects_of_every_kind_validate_against_the_schema():
    catalogue = build_catalogue(("BTC-PERPETUAL",), NOW, FULL)
    option = next(i for i in catalogue.instruments if i.kind == "option" and i.settlement_period == "day")
    obj = option.api_object()
    assert obj["tick_size"] == 0.0001 and obj["tick_size_steps"] == [
        {"above_price": 0.005, "tick_size": 0.0005}
    ]
    assert obj["quote_currency"] == obj["settlement_currency"] == "BTC" and obj["min_trade_amount"] == 0.1
    assert obj["creation_timestamp"] < NOW < obj["expiration_timestamp"]
    kinds = {(i.kind, i.settlement_period, i.option_type, i.base): i for i in catalogue.instruments}
    assert len(kinds) == 2 * (3 + 3 * 2)  # per currency: perpetual, week and month futures; 3 periods x C/P
    for inst in kinds.values():
        validate(inst.api_object(), schema("instrument"))
    ids = [i.instrument_id for i in catalogue.instruments]
    assert ids == sorted(set(ids))


def test_every_option_book_lives_on_the_tick_grid_and_cheap_ones_below_0_005():
    catalogue = build_catalogue(("BTC-*", "ETH-*"), NOW, ChainSize(3, 25))
    market = Market(catalogue, 1, 10_000)
    market.reprice(NOW)
    market.generate(20_000, NOW)
    options = [st for st in market.states if st.inst.kind == "option"]
    assert any(st.inst.ceiling for st in options) and any(not st.inst.ceiling for st in options)
    for st in options:
        prices = st.book.bids.prices + st.book.asks.prices
        assert all(st.inst.to_ticks(st.inst.px(p)) == p for p in prices), st.inst.name
        if st.inst.ceiling:
            assert max(prices) * st.inst.tick <= 0.005 + 1e-12
        assert not st.book.crossed()


def test_option_books_start_at_the_model_value():
    catalogue = build_catalogue(("BTC-*",), NOW, ChainSize(1, 5))
    market = Market(catalogue, 1, 10_000)
    market.reprice(NOW)
    for st in market.states:
        if st.inst.kind == "option" and st.inst.base == "BTC" and not st.inst.ceiling:
            mid = st.mid_ticks() * st.inst.tick
            assert abs(mid - market.marks.quote(st).mark) < 0.003, st.inst.name
            t = pricing.years(st.inst.expiry_ms, NOW)
            assert market.marks.quote(st).forward == pytest.approx(
                pricing.forward(REF_PRICE["BTC"], t), rel=1e-3
            )


def test_patterns_select_what_moves_including_later_listings():
    catalogue = build_catalogue(("BTC-PERPETUAL", "BTC-*-C"), NOW)
    moving = [catalogue.instruments[i].name for i in catalogue.active]
    assert moving[0] == "BTC-PERPETUAL" and all(n.endswith("-C") for n in moving[1:]) and len(moving) > 1
    assert catalogue.selection("BTC-9DEC26-90000-C") and not catalogue.selection("ETH-9DEC26-3000-C")
    with pytest.raises(ConfigError, match="matches no listed instrument"):
        build_catalogue(("SOL-*",), NOW)


def test_a_count_beyond_the_chain_adds_options_further_out():
    catalogue = build_catalogue(2000, NOW)
    assert len(catalogue.active) == 2000 == len({i.name for i in catalogue.instruments})
