"""From the configuration to the instruments to serve, asking the exchange when it must.

The feeder always asks the exchange at start (`public/get_instruments`, catalog.py): every record carries
the exchange's instrument_id and the inventory its metadata. `--check` asks only when the selection has a
pattern, a kind or a currency (exact names need no exchange to be checked). Rules it keeps:
- A selection that selects nothing (a pattern, a kind, a currency) is a `SelectionError` (exit 2).
- An exchange that cannot be reached is fatal when the selection needs it; with exact names only, the
  feeder serves them without ids (0) and says so once, as it did before ids existed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from feeder.errors import FeederError, NetworkError, RemoteProtocolError
from feeder.exchanges.deribit.instruments import InstrumentInfo
from feeder.exchanges.deribit.selection import Selection
from feeder.runtime.catalog import Catalog, fetch_catalog
from feeder.runtime.config import FeederConfig

log = logging.getLogger("feeder.resolve")


class ExchangeUnavailable(FeederError):
    """The exchange could not be asked for its instruments and the selection needs it."""


@dataclass
class Resolved:
    selection: Selection
    instruments: list[InstrumentInfo]
    catalog: Catalog  # everything listed for the currencies asked (underlyings' ids come from it)
    asked: bool  # whether the exchange was asked


def selection_of(config: FeederConfig) -> Selection:
    return Selection(config.patterns, config.kind, config.currency)


def without_exchange(config: FeederConfig) -> Resolved:
    """The exact names as they are, kinds from Deribit's naming (no ids)."""
    selection = selection_of(config)
    infos = [InstrumentInfo.unknown(name) for name in selection.patterns]
    return Resolved(selection, infos, Catalog(list(infos)), asked=False)


async def resolve(config: FeederConfig, url: str) -> Resolved:
    """The selected instruments, from the exchange at `url`."""
    selection = selection_of(config)
    try:
        catalog = await fetch_catalog(url, selection.fetch_currencies)
    except (NetworkError, RemoteProtocolError, OSError, TimeoutError) as exc:
        if not selection.exact:
            raise ExchangeUnavailable(
                f"cannot ask {url} for its instruments ({type(exc).__name__}: {exc}), and the selection "
                f"({', '.join(selection.patterns) or 'kinds and currencies'}) needs them"
            ) from None
        log.warning("cannot ask %s for instrument ids (%s): serving the names given, ids 0", url, exc)
        return without_exchange(config)
    return Resolved(selection, selection.resolve(catalog.instruments), catalog, asked=True)


def sim_instruments(config: FeederConfig) -> tuple[str, ...] | None:
    """What the embedded simulator is started with: the names and patterns asked for (it lists them
    and moves their books), or None for its own catalogue when only kinds or currencies select."""
    return selection_of(config).patterns or None
