"""Chain rings: one ring for the records of many instruments, told apart by `instrument_id`.

Owns their names, so that every layer (the supervisor marking a dead worker's rings, the adapter, the
readers) recognises a chain ring the same way without asking anyone:

| ring                    | holds                                                      |
|-------------------------|------------------------------------------------------------|
| `book.BTC-options`      | book records of every BTC option the feeder serves         |
| `ticker.ETH-futures`    | ticker records of every dated ETH future                   |
| `trades.BTC_USDC-perpetuals` | trades of the USDC-settled BTC perpetuals              |
| `markprice.btc_usd`     | mark price and IV of every option of the index (always a chain) |

Rules it keeps:
- A chain symbol is `<group>-<kind>s`: the group is the instrument name's first part (`BTC`,
  `BTC_USDC`), the kind lowercase and plural. Instrument names are upper case, so a chain ring can never
  have the name of an instrument's ring.
- In a chain ring a MARKER|GAP record with `instrument_id` 0 speaks for every instrument of the chain
  (the stream was interrupted: a dead worker, a disconnect); any other record speaks for its own
  instrument only, so a gap on one option flags only that option.
"""

from __future__ import annotations

import re

CHAIN_KINDS = ("option", "future", "perpetual", "spot")
MARKPRICE = "markprice"  # the stream whose rings are always chains (one per price index)
_CHAIN_SYMBOL = re.compile(r"^[A-Z0-9_]+-(?:options|futures|perpetuals|spots)$")


def chain_symbol(group: str, kind: str) -> str:
    """`BTC`, `option` -> `BTC-options`."""
    return f"{group}-{kind}s"


def instrument_group(instrument: str) -> str:
    """The part of an instrument name a chain groups by: `BTC-27DEC26-100000-C` -> `BTC`."""
    return instrument.partition("-")[0]


def is_chain(ring: str) -> bool:
    """Whether a ring name is a chain ring's."""
    stream, _, symbol = ring.partition(".")
    return stream == MARKPRICE or bool(_CHAIN_SYMBOL.match(symbol))
