"""The instruments a feeder serves and one reader for a whole chain.

`universe()` / `wait_for(pattern)` read the instance's inventory (`inventory.py`, layout in
schemas/inventory.json); `ChainReader` follows a chain ring and keeps the latest record per instrument.
"""

from feeder.universe.chainreader import ChainReader
from feeder.universe.universe import Instrument, Universe, universe, wait_for

__all__ = ["ChainReader", "Instrument", "Universe", "universe", "wait_for"]
