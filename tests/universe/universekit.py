"""Instruments for the universe tests."""

from __future__ import annotations

from datetime import UTC, datetime

from feeder.exchanges.deribit.instruments import InstrumentInfo

EXPIRY = int(datetime(2026, 12, 25, 8, tzinfo=UTC).timestamp() * 1000)


def option(name: str, iid: int, strike: float = 100000.0, option_type: str = "call") -> InstrumentInfo:
    return InstrumentInfo(
        name=name, instrument_id=iid, kind="option", base_currency="BTC", quote_currency="BTC",
        settlement_currency="BTC", price_index="btc_usd", expiration_ms=EXPIRY, tick_size=0.0001,
        contract_size=1.0, min_trade_amount=0.1, strike=strike, option_type=option_type,
        tick_step_above=0.005, tick_step_size=0.0005,
    )  # fmt: skip


CALL = option("BTC-25DEC26-100000-C", 301)
PUT = option("BTC-25DEC26-100000-P", 302, option_type="put")
STREAMS = 1 | 4 | 8  # book, ticker, markprice
