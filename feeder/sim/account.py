"""`private/get_account_summary`: a simulated account, shaped like Deribit's, with its rate limits.

Pure. Balances are fixed demo figures (the simulator does no margin accounting); what matters is
`limits`, the account's own request limits as Deribit reports them (`non_matching_engine` and each
matching-engine class as {rate: requests per second, burst}), which are the limits the simulator
enforces: the configured `matching_limit` for trading, its default bucket for everything else.
"""

from __future__ import annotations

from typing import Any

from feeder.sim.ratelimit import LIMITS

_BALANCE = {"BTC": 10.0, "ETH": 100.0}


def api_limits(matching_limit: tuple[float, float]) -> dict[str, Any]:
    """The `limits` object: what the simulator enforces, in requests (per second, burst)."""
    cost, capacity, refill = LIMITS["default"]
    rate, burst = matching_limit
    trading = {"burst": burst, "rate": rate}
    return {
        "limits_per_currency": False,
        "non_matching_engine": {"burst": capacity / cost, "rate": refill / cost},
        "matching_engine": {
            "trading": {"total": dict(trading)},
            "spot": dict(trading),
            "quotes": dict(trading),
            "max_quotes": {"burst": 10, "rate": 10},
            "guaranteed_quotes": {"burst": 2, "rate": 2},
            "cancel_all": dict(trading),
        },
    }


def account_summary(account: str, currency: str, matching_limit: tuple[float, float]) -> dict[str, Any]:
    balance = _BALANCE.get(currency, 1000.0)
    zero_map = {f"{currency.lower()}_usd": 0.0}
    return {
        "currency": currency,
        "balance": balance,
        "equity": balance,
        "margin_balance": balance,
        "available_funds": balance,
        "available_withdrawal_funds": balance,
        "initial_margin": 0.0,
        "maintenance_margin": 0.0,
        "projected_initial_margin": 0.0,
        "projected_maintenance_margin": 0.0,
        "total_pl": 0.0,
        "session_upl": 0.0,
        "session_rpl": 0.0,
        "futures_pl": 0.0,
        "futures_session_upl": 0.0,
        "futures_session_rpl": 0.0,
        "options_pl": 0.0,
        "options_session_upl": 0.0,
        "options_session_rpl": 0.0,
        "options_delta": 0.0,
        "options_gamma": 0.0,
        "options_vega": 0.0,
        "options_theta": 0.0,
        "options_value": 0.0,
        "options_gamma_map": dict(zero_map),
        "options_theta_map": dict(zero_map),
        "options_vega_map": dict(zero_map),
        "delta_total": 0.0,
        "delta_total_map": dict(zero_map),
        "projected_delta_total": 0.0,
        "estimated_liquidation_ratio": 0.0,
        "estimated_liquidation_ratio_map": dict(zero_map),
        "fee_balance": 0.0,
        "spot_reserve": 0.0,
        "limits": api_limits(matching_limit),
        "fees": [],
        "id": 1,
        "type": "main",
        "username": account,
        "system_name": account,
        "email": f"{account}@sim.invalid",
        "creation_timestamp": 1_700_000_000_000,
        "referrer_id": "",  # the schema's type (a string); the example sends null
        "login_enabled": True,
        "security_keys_enabled": False,
        "mmp_enabled": False,
        "interuser_transfers_enabled": False,
        "portfolio_margining_enabled": False,
        "cross_collateral_enabled": False,
        "block_rfq_self_match_prevention": True,
        "margin_model": "segregated_sm",
        "self_trading_reject_mode": "cancel_maker",
        "self_trading_extended_to_subaccounts": "false",  # a string, as the schema declares
    }
