"""Selecting instruments (patterns, kinds, currencies), planning their rings and workers, sizing memory."""

from __future__ import annotations

import math
import re
from dataclasses import replace

import pytest
from universe.universekit import CALL, PUT, option

from feeder.exchanges.deribit.channels import ChannelMap
from feeder.exchanges.deribit.instruments import InstrumentInfo
from feeder.exchanges.deribit.selection import Selection, SelectionError
from feeder.runtime.plan import Layout, Plan, initial
from feeder.runtime.sizing import SharedMemoryTooSmall, capacity, check_free, shm_size_advice

PERP = InstrumentInfo(
    "BTC-PERPETUAL",
    100,
    "perpetual",
    "BTC",
    "USD",
    "BTC",
    "btc_usd",
    32503708800000,
    0.5,
    10.0,
    10.0,
    currency="BTC",
)
ETH_PERP = replace(
    PERP, name="ETH-PERPETUAL", instrument_id=101, base_currency="ETH", price_index="eth_usd", currency="ETH"
)
FUTURE = replace(PERP, name="BTC-25DEC26", instrument_id=200, kind="future", expiration_ms=CALL.expiration_ms)
CATALOG = [PERP, ETH_PERP, FUTURE, replace(CALL, currency="BTC"), replace(PUT, currency="BTC")]
STREAMS = ("book", "trades", "ticker", "markprice")


def names(infos) -> list[str]:
    return [i.name for i in infos]


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        (Selection(("BTC-PERPETUAL",)), ["BTC-PERPETUAL"]),
        (Selection(("BTC-*-C",)), [CALL.name]),
        (Selection(("BTC-25DEC26-*",)), [CALL.name, PUT.name]),
        (Selection(kinds=("option",)), [CALL.name, PUT.name]),
        (Selection(kinds=("perpetual",), currencies=("ETH",)), ["ETH-PERPETUAL"]),
        (Selection(("BTC-*",), kinds=("future", "perpetual")), ["BTC-PERPETUAL", "BTC-25DEC26"]),
    ],
)
def test_patterns_kinds_and_currencies_select_from_the_catalog(selection, expected):
    assert names(selection.resolve(CATALOG)) == expected


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        (Selection(("BTC-*-X",)), "pattern 'BTC-*-X' matched nothing"),
        (Selection(("BTC-FOO",)), "instrument 'BTC-FOO' is not listed"),
        (Selection(("BTC-PERPETUAL",), kinds=("option",)), "not of the selected kinds"),
        (Selection(currencies=("USDC",)), "currency 'USDC' lists no instrument"),
        (Selection(kinds=("spot",)), "kind 'spot' matched nothing"),
    ],
)
def test_what_selects_nothing_is_named(selection, message):
    with pytest.raises(SelectionError, match=re.escape(message)):
        selection.resolve(CATALOG)


def test_an_unknown_kind_is_refused():
    with pytest.raises(SelectionError, match="kinds are option, future, perpetual, spot"):
        Selection(kinds=("options",))


def test_listings_are_followed_when_the_selection_can_grow_or_its_instruments_expire():
    assert Selection(("BTC-PERPETUAL",)).state_channels([PERP]) == []
    assert Selection(("BTC-25DEC26",)).state_channels([FUTURE]) == ["instrument.state.future.any"]
    assert Selection(("BTC-*-C",)).state_channels([CALL]) == ["instrument.state.option.any"]
    chans = Selection(kinds=("option", "perpetual"), currencies=("BTC", "ETH")).state_channels([])
    assert chans == [f"instrument.state.{k}.{c}" for k in ("option", "future") for c in ("BTC", "ETH")]
    assert Selection(("BTC-*-C",)).matches(option("BTC-3JAN27-120000-C", 9))


def initial_plan(layout: Layout, workers: int, infos) -> Plan:
    return initial(layout, workers, infos, cpus=(0, 1))[0]


def _layout(chains=(), table=None) -> Layout:
    return Layout(STREAMS, chains, table or {}, ChannelMap(authenticated=True))


def test_chain_instruments_share_rings_and_one_worker():
    plan = initial_plan(_layout(("option",)), 4, CATALOG)
    call = plan.served[CALL.name]
    assert call.rings == {
        "book": "book.BTC-options", "trades": "trades.BTC-options", "ticker": "ticker.BTC-options",
        "markprice": "markprice.btc_usd",
    }  # fmt: skip
    assert plan.served[PUT.name].rings == call.rings and call.ring_symbol == "BTC-options"
    assert plan.served["BTC-PERPETUAL"].rings["book"] == "book.BTC"  # the alias
    routes = plan.routes(plan.worker_of["BTC-options"])
    assert ("book.BTC-options", CALL.name, CALL.instrument_id) in routes
    assert ("book.BTC-options", PUT.name, PUT.instrument_id) in routes
    assert plan.workers == 4  # perpetual, perpetual, future, the chain (the markprice unit joins one)


def test_the_busiest_units_are_spread_first_and_never_more_workers_than_units():
    plan = initial_plan(_layout(("option",)), 2, CATALOG)
    assert plan.worker_of["BTC-PERPETUAL"] != plan.worker_of["ETH-PERPETUAL"]
    assert initial_plan(_layout(), 8, [PERP]).workers == 1


def test_a_listing_joins_its_chains_worker_and_an_end_frees_its_rings():
    plan = initial_plan(_layout(("option",)), 2, CATALOG)
    new = option("BTC-3JAN27-120000-C", 999)
    served, rings = plan.add([new])
    assert (
        rings == [] and plan.worker_of[served[0].units["book.BTC-options"]] == plan.worker_of["BTC-options"]
    )
    gone, dropped = plan.remove(["BTC-25DEC26"])
    assert names(s.info for s in gone) == ["BTC-25DEC26"]
    assert sorted(dropped) == ["book.BTC-25DEC26", "ticker.BTC-25DEC26", "trades.BTC-25DEC26"]
    assert plan.remove([CALL.name, PUT.name])[1] == []  # the chain still has the new option
    assert sorted(plan.remove([new.name])[1]) == [
        "book.BTC-options", "markprice.btc_usd", "ticker.BTC-options", "trades.BTC-options"
    ]  # fmt: skip


def test_capacity_comes_from_the_most_specific_entry():
    table = {"book": 4096, "option": {"book": 256}, "book.BTC-options": 1 << 18}
    assert capacity(table, "book.BTC-options", None, chain=True) == 1 << 18
    assert capacity(table, "book.BTC-25DEC26-100000-C", "option", chain=False) == 256
    assert capacity(table, "book.BTC", "perpetual", chain=False) == 4096
    assert capacity({}, "book.BTC", "perpetual", chain=False) == 16384
    assert capacity({}, "ticker.ETH-options", None, chain=True) == 1 << 16


def test_the_defaults_put_all_btc_and_eth_options_futures_and_perpetuals_under_1_gb():
    options = [
        option(f"BTC-25DEC26-{k}-{cp}", k * 2 + (cp == "P"), strike=k) for k in range(800) for cp in "CP"
    ]
    futures = [replace(FUTURE, name=f"BTC-{d}DEC26", instrument_id=10**6 + d) for d in range(1, 21)]
    catalog = [PERP, ETH_PERP, *futures, *options[:1580]]
    assert len(catalog) >= 1600
    for chains in ((), ("option",)):
        size = initial_plan(_layout(chains), 2, catalog).size_bytes
        assert size < 1 << 30, (chains, size / 2**20)


def test_too_little_shared_memory_names_the_amount_and_the_compose_setting():
    with pytest.raises(SharedMemoryTooSmall) as caught:
        check_free(1 << 50)
    message = str(caught.value)
    assert "1,073,741,824 MiB" in message and "shm_size: " in message and "--shm-size=" in message
    assert shm_size_advice(900 << 20) == "1280m" and shm_size_advice(700 << 20) == "1g"
    assert not math.isnan(check_free(1))
