"""The option model: Black-76 values, greeks in Deribit's units, implied volatility, the smile, the clock."""

from __future__ import annotations

import pytest

from feeder.sim import pricing
from feeder.sim.clock import DAY_MS, SimClock, expiry_hours, next_expiry_hour

F, K, T = 90_000.0, 95_000.0, 7 / 365


def test_put_call_parity_holds_without_discounting():
    vol = pricing.smile("BTC", F, K, T)
    call, put = pricing.value(F, K, T, vol, True), pricing.value(F, K, T, vol, False)
    assert call - put == pytest.approx(F - K, abs=1e-6)


@pytest.mark.parametrize("call", [True, False])
def test_greeks_are_the_derivatives_of_the_usd_value_in_deribit_units(call):
    vol = 0.55
    g = pricing.greeks(F, K, T, vol, call)
    v = pricing.value
    h = 1.0
    assert g["delta"] == pytest.approx(
        (v(F + h, K, T, vol, call) - v(F - h, K, T, vol, call)) / (2 * h), rel=1e-4
    )
    second = (v(F + h, K, T, vol, call) - 2 * v(F, K, T, vol, call) + v(F - h, K, T, vol, call)) / h**2
    assert g["gamma"] == pytest.approx(second, rel=1e-3)
    per_point = (v(F, K, T, vol + 0.005, call) - v(F, K, T, vol - 0.005, call)) / 1.0  # one vol point
    assert g["vega"] == pytest.approx(per_point, rel=1e-3)
    day = 1 / 365
    assert g["theta"] == pytest.approx(v(F, K, T - day, vol, call) - v(F, K, T, vol, call), rel=2e-2)
    assert (0 < g["delta"] < 1) if call else (-1 < g["delta"] < 0)
    assert (g["rho"] > 0) == call


def test_implied_vol_inverts_the_value_and_refuses_prices_no_volatility_gives():
    for strike in (60_000.0, 90_000.0, 130_000.0):
        for call in (True, False):
            vol = pricing.smile("BTC", F, strike, T)
            usd = pricing.value(F, strike, T, vol, call)
            if usd > 1e-6 * F:
                assert pricing.implied_vol(usd, F, strike, T, call, 0.3) == pytest.approx(vol, rel=1e-5)
    assert pricing.implied_vol(4_000.0, F, 86_000.0, T, True, 0.5) is None, "below intrinsic (4,000)"
    assert pricing.implied_vol(F, F, K, T, True, 0.5) is None, "a call is worth less than the forward"


def test_the_smile_has_a_put_skew_and_rising_wings():
    atm = pricing.smile("BTC", F, F, T)
    assert pricing.smile("BTC", F, 0.8 * F, T) > pricing.smile("BTC", F, 1.25 * F, T) > atm
    assert pricing.smile("ETH", F, F, T) > atm
    assert pricing.smile("BTC", F, F, 1 / 365) > pricing.smile("BTC", F, F, 1.0), "short expiries richer"


def test_the_clock_runs_at_its_speed_jumps_ahead_and_never_back():
    clock = SimClock(1_000_000, 60.0, wall=5_000)
    assert clock.now(5_000) == 1_000_000 and clock.now(6_000) == 1_060_000
    assert clock.advance(3_600_000, wall=6_000) == 4_660_000
    assert clock.now(6_500) == 4_690_000
    clock.set_speed(1.0, wall=6_500)
    assert clock.now(7_500) == 4_691_000
    with pytest.raises(ValueError):
        clock.advance(-1, wall=7_500)


def test_expiry_hours_are_every_0800_utc_passed():
    eight = 1_795_593_600_000  # 2026-11-25 08:00 UTC
    assert next_expiry_hour(eight - 1) == eight and next_expiry_hour(eight) == eight + DAY_MS
    assert expiry_hours(eight - 1, eight + 2 * DAY_MS) == [eight, eight + DAY_MS, eight + 2 * DAY_MS]
    assert expiry_hours(eight, eight + DAY_MS - 1) == []
