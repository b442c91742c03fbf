"""Deribit's request limits and the credit table for the client's bucket."""

from __future__ import annotations

import pytest
from deribit.spec import all_methods, method_tags

from feeder.core.ratelimit import cost_function
from feeder.errors import ConfigError
from feeder.exchanges.deribit.costs import MATCHING_ENGINE, SPECIAL, TIERS, DeribitCosts, Limit


def test_matching_engine_methods_are_exactly_those_the_official_spec_tags_so():
    tagged = {m for m in all_methods() if "Matching Engine" in method_tags(m)}
    assert tagged == MATCHING_ENGINE


def test_non_matching_requests_cost_500_credits_of_a_50000_bucket_refilled_at_10000_per_s():
    limit = DeribitCosts().rate_limit()
    cost = cost_function(limit.cost)
    assert (limit.capacity, limit.refill_per_s) == (50_000, 10_000)
    assert cost("public/get_time") == cost("private/get_positions") == 500


@pytest.mark.parametrize("tier", sorted(TIERS))
def test_every_limited_class_alone_stays_within_its_rate_and_burst(tier):
    costs = DeribitCosts(tier)
    limit = costs.rate_limit()
    for method in [*MATCHING_ENGINE, "public/subscribe", "public/get_time"]:
        allowed = costs.limit(method)
        credits = costs.cost(method)
        assert limit.capacity / credits <= allowed.burst + 1e-9, method
        assert limit.refill_per_s / credits <= allowed.rate + 1e-9, method


def test_lowest_tier_orders_allow_bursts_of_20_and_at_most_5_per_second():
    costs = DeribitCosts(4)
    assert costs.limit("private/buy") == Limit(5.0, 20.0)
    assert 50_000 / costs.cost("private/buy") == 20


def test_a_cost_never_exceeds_the_bucket_so_every_method_can_be_sent():
    costs = DeribitCosts()
    assert max(costs.table().values()) <= costs.rate_limit().capacity
    assert SPECIAL["public/get_instruments"] == Limit(0.1, 5.0)


def test_unknown_tier_is_a_config_error():
    with pytest.raises(ConfigError, match="tier"):
        DeribitCosts(7)


def test_a_shared_bucket_names_its_directory(tmp_path):
    limit = DeribitCosts().rate_limit(shared_dir=tmp_path)
    assert limit.shared_dir == tmp_path and limit.shared_name == "deribit"
