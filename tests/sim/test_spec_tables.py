"""The simulator's declarative tables agree with the official spec; param validation is strict."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sim.kit import method, schema, validate

from feeder.errors import ConfigError
from feeder.sim.catalogue import build_catalogue
from feeder.sim.instruments import expiry_code, parse_name
from feeder.sim.params import SPECS
from feeder.sim.params import validate as validate_params
from feeder.sim.rpc import RpcError

NOW = int(datetime(2026, 11, 25, 12, tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_served_method_and_param_exists_in_the_spec_with_the_same_type(name):
    spec_params = {p["name"]: p for p in method(name).get("parameters", [])}
    for param, ours in SPECS[name].params.items():
        assert param in spec_params, f"{name}: {param} is not a param in openapi.json"
        declared = spec_params[param]["schema"]
        declared_type = declared.get("type") or schema(declared["$ref"].split("/")[-1]).get("type")
        assert ours.type == declared_type, f"{name}.{param}: {ours.type} vs {declared_type}"


@pytest.mark.parametrize("name", sorted(SPECS))
def test_websocket_only_and_matching_engine_flags_follow_the_spec_tags(name):
    tags = method(name)["tags"]
    assert SPECS[name].ws_only == ("WebSocket Only" in tags)
    assert (SPECS[name].bucket == "matching") == ("Matching Engine" in tags)


def test_http_values_are_converted_by_declared_type():
    spec = SPECS["public/get_instruments"]
    assert validate_params(spec, {"currency": "BTC", "expired": "false"}, from_http=True) == {
        "currency": "BTC",
        "expired": False,
    }
    with pytest.raises(RpcError) as err:
        validate_params(SPECS["private/buy"], {"instrument_name": "X", "amount": "ten"}, from_http=True)
    assert err.value.data == {"reason": "must be a number", "param": "amount"}


def test_websocket_values_must_have_the_json_type():
    with pytest.raises(RpcError) as err:
        validate_params(
            SPECS["public/get_instruments"], {"currency": "BTC", "expired": "false"}, from_http=False
        )
    assert err.value.data["param"] == "expired"
    with pytest.raises(RpcError):
        validate_params(SPECS["private/buy"], {"instrument_name": "X", "amount": True}, from_http=False)


def test_catalogue_lists_perpetuals_futures_on_fridays_and_options_at_0800():
    catalogue = build_catalogue(("BTC-PERPETUAL",), NOW)
    names = [i.name for i in catalogue.instruments]
    assert names[:2] == ["BTC-PERPETUAL", "ETH-PERPETUAL"]
    assert "BTC-27NOV26" in names and "BTC-4DEC26" in names and "BTC-26MAR27" in names
    dated = [i for i in catalogue.instruments if not i.is_perpetual]
    futures = [i for i in dated if i.kind == "future"]
    assert all(datetime.fromtimestamp(i.expiry_ms / 1000, UTC).weekday() == 4 for i in futures)
    assert all(datetime.fromtimestamp(i.expiry_ms / 1000, UTC).hour == 8 for i in dated)
    assert any(i.kind == "option" and i.option_type == "put" for i in dated)
    assert catalogue.active == [0]


def test_instrument_objects_validate_against_the_instrument_schema():
    for inst in build_catalogue(("BTC-PERPETUAL",), NOW).instruments:
        validate(inst.api_object(), schema("instrument"))


def test_a_count_generates_that_many_distinct_active_instruments():
    catalogue = build_catalogue(1000, NOW)
    assert len(catalogue.active) == 1000 == len({i.name for i in catalogue.instruments})


def test_unlisted_but_valid_names_are_added_and_bad_names_refused():
    catalogue = build_catalogue(("ETH-31DEC26-3100-C",), NOW)
    assert catalogue.instruments[catalogue.active[0]].strike == 3100.0
    with pytest.raises(ConfigError, match="BTC-PERPETUAL"):
        build_catalogue(("BTC-PERP",), NOW)
    assert parse_name("BTC-27NOV25", NOW, 90000.0) is None, "expired"
    assert expiry_code(datetime(2026, 12, 4).date()) == "4DEC26"


def test_option_prices_follow_the_coarser_tick_above_0_005():
    inst = next(i for i in build_catalogue(("BTC-PERPETUAL",), NOW).instruments if i.kind == "option")
    assert inst.to_ticks(0.0042) == 42
    assert inst.to_ticks(0.0123) is None and inst.to_ticks(0.0125) == 125
