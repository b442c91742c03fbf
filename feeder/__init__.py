"""feeder: a multiprocess shared-memory market-data feeder for crypto derivatives (Deribit first).

The public API, for strategies and consumers on the same host:

- `RingReader(name)`: attach to a ring (`book.BTC`, `trades.ETH`, ...) and read its records: polling,
  spinning, asleep in the kernel until the writer wakes it (`wait="block"`), or from coroutines.
- `SNAPSHOT`, `GAP`, `CROSSED`, `MARKER`, `FINAL`, `LOCKED`: record flags; a book is trustworthy from a
  SNAPSHOT until a GAP.
- `FeederHandle()` / `AsyncFeederHandle.connect()`: send exchange requests (orders) through the running
  feeder, and read its status.
- `record_schema(type)`: the numpy dtype and fingerprint of `book`, `trade` and `ticker` records.
- `Book`, `Trade`, `Ticker`, `Markprice` (one record) and `Books`, `Trades`, `Tickers`, `Markprices` (an
  array of records): typed, zero-copy views (`book.bids`, `best_bid`, `mid`, `spread`, `valid`, times as `datetime`).
- `feeder.recordings`: recordings of rings (.npy or Parquet), loaded as numpy, Arrow or pandas.
- `RingWriter`, `create_ring`, `list_rings`, `clean_stale`: for mirrors, replays and tools.
- `NatsConfig`: where and how to reach NATS, for `FeederHandle(nats=...)` on another host.
- `instance_name()`, `check_ring_name()`: the instance namespace in use and ring-name validation.
- `universe()`, `wait_for(pattern)`: the instruments the running feeder serves (`Universe`, `Instrument`),
  read from its inventory; `ChainReader(ring)`: the latest record of every instrument of a chain ring.
- The exception families of `feeder.errors`.
"""

from feeder.bridge.natsconn import NatsConfig
from feeder.errors import (
    ConfigError,
    ConnectionLost,
    ExchangeError,
    FeederError,
    FeederNotRunning,
    FingerprintMismatch,
    NetworkError,
    NoHealthyWorker,
    NotAuthenticated,
    OutcomeUnknown,
    RateLimited,
    RemoteProtocolError,
    RequestTimeout,
    RingError,
    RingNotFound,
    UsageError,
)
from feeder.records import Book, Books, Markprice, Markprices, Ticker, Tickers, Trade, Trades
from feeder.ring import (
    CROSSED,
    FINAL,
    GAP,
    LOCKED,
    MARKER,
    SNAPSHOT,
    RingInfo,
    RingOwner,
    RingReader,
    RingWriter,
    clean_stale,
    create_ring,
    list_rings,
)
from feeder.ring.names import check_ring_name, instance_name
from feeder.ring.schema import record_schema
from feeder.runtime.handle import AsyncFeederHandle, FeederHandle
from feeder.universe import ChainReader, Instrument, Universe, universe, wait_for

__all__ = [
    "CROSSED",
    "FINAL",
    "GAP",
    "LOCKED",
    "MARKER",
    "SNAPSHOT",
    "AsyncFeederHandle",
    "Book",
    "Books",
    "ChainReader",
    "ConfigError",
    "ConnectionLost",
    "ExchangeError",
    "FeederError",
    "FeederHandle",
    "FeederNotRunning",
    "FingerprintMismatch",
    "Instrument",
    "Markprice",
    "Markprices",
    "NatsConfig",
    "NetworkError",
    "NoHealthyWorker",
    "NotAuthenticated",
    "OutcomeUnknown",
    "RateLimited",
    "RemoteProtocolError",
    "RequestTimeout",
    "RingError",
    "RingInfo",
    "RingNotFound",
    "RingOwner",
    "RingReader",
    "RingWriter",
    "Ticker",
    "Tickers",
    "Trade",
    "Trades",
    "Universe",
    "UsageError",
    "check_ring_name",
    "clean_stale",
    "create_ring",
    "instance_name",
    "list_rings",
    "record_schema",
    "universe",
    "wait_for",
]
