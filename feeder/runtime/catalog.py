"""The exchange's instrument catalog, asked once at start: `public/get_instruments` per currency, then close.

Like account.py: one short public connection before anything is created, no retries. The supervisor
(and `feeder --check` when the selection has patterns, kinds or currencies) resolves the selection
against it and takes every instrument's id and metadata from it. A currency the exchange refuses is a
`SelectionError` naming it; an instrument object that fails validation is logged and left out (counted
in `Catalog.rejected`), never the whole catalog. Deribit allows 5 get_instruments calls in a burst
(then one per 10 s), which is why currencies are capped at 5.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from feeder.client import Client, ClientConfig
from feeder.errors import BadMessage, ExchangeError
from feeder.exchanges.deribit.instruments import InstrumentInfo
from feeder.exchanges.deribit.selection import SelectionError

log = logging.getLogger("feeder.catalog")

ASK_TIMEOUT_S = 15.0
MAX_CURRENCIES = 5  # get_instruments: a burst of 5, then one per 10 s


@dataclass
class Catalog:
    """Every instrument the exchange listed for the currencies asked, in its order."""

    instruments: list[InstrumentInfo] = field(default_factory=list)
    rejected: int = 0

    def ids(self) -> dict[str, int]:
        return {info.name: info.instrument_id for info in self.instruments}

    def add(self, objects: object, currency: str) -> None:
        if not isinstance(objects, list):
            raise BadMessage("get_instruments result", objects, "a list of instruments")
        for obj in objects:
            try:
                info = InstrumentInfo.from_api(obj, "" if currency == "any" else currency)
            except BadMessage as exc:
                self.rejected += 1
                if self.rejected == 1:
                    log.warning("get_instruments: left out an instrument object: %s", exc)
                continue
            if info is not None:
                self.instruments.append(info)


async def fetch_catalog(url: str, currencies: Iterable[str]) -> Catalog:
    """The catalog for `currencies` (`any` for every one) from the exchange at `url`."""
    currencies = list(dict.fromkeys(currencies))
    if len(currencies) > MAX_CURRENCIES:
        raise SelectionError(
            f"at most {MAX_CURRENCIES} currencies (Deribit allows that many get_instruments)"
        )
    config = ClientConfig(url=url, heartbeat="none", reconnect_on_error=False, connect_timeout=ASK_TIMEOUT_S)
    client = Client(config)
    catalog = Catalog()
    try:
        await asyncio.wait_for(client.connect(), ASK_TIMEOUT_S)
        for currency in currencies:
            try:
                result = await client.request("public/get_instruments", {"currency": currency}, ASK_TIMEOUT_S)
            except ExchangeError as exc:
                raise SelectionError(
                    f"currency {currency!r}: the exchange refused it ({exc.message}); use a currency such "
                    f"as BTC, ETH or USDC"
                ) from None
            catalog.add(result, currency)
    finally:
        await client.close()
    if catalog.rejected:
        log.warning(
            "get_instruments: %d instrument objects failed validation and are not served", catalog.rejected
        )
    return catalog
