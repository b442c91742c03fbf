"""The feeder program's configuration: one frozen object, from a TOML file and CLI flags.

Every key of the TOML file is a field below (same name, `-` or `_`); CLI flags override the file;
validation happens once, here, and every bad value raises ConfigError naming the field, the value and
what is allowed. Credentials are not configuration: they come from the environment or a 0600 file.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from feeder.errors import ConfigError
from feeder.exchanges.deribit.books import CROSSED_MODES
from feeder.exchanges.deribit.channels import ChannelConfig
from feeder.exchanges.deribit.costs import TIERS
from feeder.exchanges.deribit.instruments import KINDS
from feeder.ring.names import instance_name
from feeder.runtime.sizing import check_capacity_table

PRODUCTION_URL = "wss://www.deribit.com/ws/api/v2"
TESTNET_URL = "wss://test.deribit.com/ws/api/v2"
EXCHANGES = ("deribit",)
STREAMS = ("book", "trades", "ticker", "markprice")
MAX_CONNECTIONS_PER_IP = 32  # Deribit refuses the 33rd connection from one address
REDUNDANCY = (1, 2)  # connections per worker (legs), each receiving every channel of the worker
DEFAULT_INSTRUMENTS = ("BTC-PERPETUAL", "ETH-PERPETUAL")  # when no instrument, kind or currency is given
_PATTERN_RE = re.compile(r"^[A-Za-z0-9_*?\[\]!-]{1,48}$")
_CURRENCY_RE = re.compile(r"^[A-Z0-9_]{2,12}$")


@dataclass(frozen=True)
class FeederConfig:
    exchange: str = "deribit"
    workers: int = 2
    instruments: tuple[str, ...] = ()  # exact names and glob patterns; see `patterns`
    kind: tuple[str, ...] = ()  # option, future, perpetual, spot; empty: any
    currency: tuple[str, ...] = ()  # BTC, ETH, USDC...; empty: any
    chains: tuple[str, ...] = ()  # kinds whose instruments share chain rings (book.BTC-options ...)
    streams: tuple[str, ...] = STREAMS
    url: str | None = None  # None: production, testnet with `testnet`, the simulator with `sim`
    testnet: bool = False
    sim: bool = False
    sim_rate: float = 500.0  # book updates per second across instruments, with `sim`
    interval: str | None = None  # Deribit channel interval; None: raw with credentials, else 100ms
    cpus: tuple[int, ...] | None = None  # None: every CPU this process may use
    busy_poll: bool = False  # workers never sleep in epoll: lower wake-up latency for a core each
    redundancy: int = 1  # connections per worker receiving every channel; 2: first arrival of a change wins
    instance: str | None = None
    duration: float | None = None  # seconds; None runs until a signal
    metrics_port: int | None = None
    record: str | None = None  # directory for per-worker JSONL recordings
    capacity: dict[str, Any] = field(default_factory=dict)  # see feeder.runtime.sizing
    depth: dict[str, int] = field(default_factory=dict)  # book ring name or glob -> levels (10, 25, 50)
    removal_grace: float = 60.0  # seconds a closed ring of an ended instrument stays before it is removed
    cancel_on_disconnect: str = "connection"  # connection | account | off
    credentials_file: str | None = None
    heartbeat_interval: float = 10.0
    liveness_interval: float = 0.5  # a silent connection is pinged this often; 0: no active liveness
    liveness_timeout: float = 1.5  # nothing proved a connection for this long: dead, its rings GAP
    hang_timeout: float = 5.0  # a worker silent this long is hung: killed and replaced (stopped ones: 1 s)
    audit_interval: float = 60.0  # seconds between audits of each book against get_order_book; 0: off
    crossed: str = "resync"  # a crossed or locked book: resync (GAP + fresh snapshot) or flag (CROSSED only)
    tier: int = 4  # Deribit account tier: the rate limits used when the account's own cannot be read
    max_restarts: int = 5
    restart_window: float = 60.0
    display: str = "auto"  # auto (live view on a terminal, log lines otherwise) | live | plain | off
    log_level: str = "info"

    def __post_init__(self) -> None:
        _validate(self)

    def channel_config(self) -> ChannelConfig:
        """How ring names become channels and records (interval, book depth per ring)."""
        return ChannelConfig(interval=self.interval, depth=self.depth)

    @property
    def patterns(self) -> tuple[str, ...]:
        """The instrument names and patterns asked for; the two perpetuals when nothing was selected."""
        if self.instruments or self.kind or self.currency:
            return self.instruments
        return DEFAULT_INSTRUMENTS

    @property
    def ws_url(self) -> str:
        """The exchange URL, unless the simulator provides it at start."""
        return self.url or (TESTNET_URL if self.testnet else PRODUCTION_URL)


def _need(ok: bool, name: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(name, value, allowed)


def _positive_number(value: Any) -> bool:
    return (
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    )


def _validate(c: FeederConfig) -> None:
    _need(c.exchange in EXCHANGES, "exchange", c.exchange, f"one of {', '.join(EXCHANGES)}")
    _need(
        isinstance(c.workers, int)
        and not isinstance(c.workers, bool)
        and 1 <= c.workers <= MAX_CONNECTIONS_PER_IP,
        "workers",
        c.workers,
        f"an integer from 1 to {MAX_CONNECTIONS_PER_IP} (Deribit allows {MAX_CONNECTIONS_PER_IP} connections per IP)",
    )
    _need(
        all(isinstance(i, str) and _PATTERN_RE.match(i) for i in c.instruments),
        "instruments",
        c.instruments,
        "instrument names or glob patterns such as BTC-PERPETUAL, BTC-*-C or ETH-27DEC26-*",
    )
    _need(len(set(c.instruments)) == len(c.instruments), "instruments", c.instruments, "no duplicates")
    for name, kinds in (("kind", c.kind), ("chains", c.chains)):
        _need(
            all(k in KINDS for k in kinds) and len(set(kinds)) == len(kinds),
            name,
            kinds,
            f"kinds among {', '.join(KINDS)}",
        )
    _need(
        all(isinstance(x, str) and _CURRENCY_RE.match(x) for x in c.currency) and len(c.currency) <= 5,
        "currency",
        c.currency,
        "at most 5 currency codes such as BTC, ETH, USDC",
    )
    _need(
        bool(c.streams) and set(c.streams) <= set(STREAMS),
        "streams",
        c.streams,
        f"a subset of {', '.join(STREAMS)}",
    )
    _need(not (c.sim and c.testnet), "testnet", c.testnet, "not together with sim")
    _need(
        c.url is None or (isinstance(c.url, str) and c.url.startswith(("ws://", "wss://"))),
        "url",
        c.url,
        "a ws:// or wss:// URL",
    )
    _need(_positive_number(c.sim_rate), "sim_rate", c.sim_rate, "a positive number of updates per second")
    _need(c.interval in (None, "raw", "100ms"), "interval", c.interval, "raw, 100ms, or unset for automatic")
    _need(
        c.cpus is None or (bool(c.cpus) and all(isinstance(x, int) and x >= 0 for x in c.cpus)),
        "cpus",
        c.cpus,
        "a non-empty list of CPU numbers",
    )
    _need(isinstance(c.busy_poll, bool), "busy_poll", c.busy_poll, "true or false")
    _need(
        c.redundancy in REDUNDANCY and not isinstance(c.redundancy, bool),
        "redundancy",
        c.redundancy,
        "1 (one connection per worker) or 2 (two, every change from whichever brings it first)",
    )
    _need(
        c.workers * c.redundancy <= MAX_CONNECTIONS_PER_IP,
        "workers",
        c.workers,
        f"at most {MAX_CONNECTIONS_PER_IP // c.redundancy} with redundancy {c.redundancy} "
        f"(workers x redundancy connections; Deribit allows {MAX_CONNECTIONS_PER_IP} per IP)",
    )
    if c.instance is not None:
        try:
            instance_name(c.instance)
        except Exception as exc:
            raise ConfigError("instance", c.instance, str(exc)) from None
    _need(
        c.duration is None or _positive_number(c.duration),
        "duration",
        c.duration,
        "a positive number of seconds",
    )
    _need(
        c.metrics_port is None or (isinstance(c.metrics_port, int) and 0 <= c.metrics_port < 65536),
        "metrics_port",
        c.metrics_port,
        "a TCP port 0-65535 (0 picks a free one)",
    )
    _need(c.record is None or isinstance(c.record, str), "record", c.record, "a directory path")
    check_capacity_table(c.capacity)
    _need(
        isinstance(c.removal_grace, int | float)
        and not isinstance(c.removal_grace, bool)
        and c.removal_grace >= 0,
        "removal_grace",
        c.removal_grace,
        "seconds >= 0",
    )
    _need(
        isinstance(c.depth, dict),
        "depth",
        c.depth,
        "a table of book ring (or glob) = levels, e.g. {'book.BTC*' = 50}",
    )
    c.channel_config()  # validates the depth of every ring pattern
    _need(
        c.cancel_on_disconnect in ("connection", "account", "off"),
        "cancel_on_disconnect",
        c.cancel_on_disconnect,
        "connection, account or off",
    )
    _need(
        _positive_number(c.heartbeat_interval) and c.heartbeat_interval >= 1,
        "heartbeat_interval",
        c.heartbeat_interval,
        "seconds, at least 1 (Deribit's minimum is 10)",
    )
    _need(
        c.liveness_interval == 0 or _positive_number(c.liveness_interval),
        "liveness_interval",
        c.liveness_interval,
        "seconds between pings of a silent connection, > 0, or 0 for no active liveness",
    )
    _need(
        _positive_number(c.liveness_timeout) and c.liveness_timeout > c.liveness_interval,
        "liveness_timeout",
        c.liveness_timeout,
        f"seconds, more than liveness_interval ({c.liveness_interval:g})",
    )
    _need(_positive_number(c.hang_timeout), "hang_timeout", c.hang_timeout, "a positive number of seconds")
    _need(
        c.audit_interval == 0 or _positive_number(c.audit_interval),
        "audit_interval",
        c.audit_interval,
        "seconds between audits of each book, > 0, or 0 for no audits",
    )
    _need(c.crossed in CROSSED_MODES, "crossed", c.crossed, " or ".join(CROSSED_MODES))
    _need(
        c.tier in TIERS and not isinstance(c.tier, bool),
        "tier",
        c.tier,
        "a Deribit account tier: 1, 2, 3 or 4",
    )
    _need(
        isinstance(c.max_restarts, int) and c.max_restarts >= 1,
        "max_restarts",
        c.max_restarts,
        "an integer >= 1",
    )
    _need(
        _positive_number(c.restart_window), "restart_window", c.restart_window, "a positive number of seconds"
    )
    _need(c.display in ("auto", "live", "plain", "off"), "display", c.display, "auto, live, plain or off")
    _need(
        c.log_level in ("debug", "info", "warning", "error"),
        "log_level",
        c.log_level,
        "debug, info, warning or error",
    )


_TUPLE_FIELDS = {"instruments", "kind", "currency", "chains", "streams", "cpus"}


def _normalise(values: dict[str, Any], source: str) -> dict[str, Any]:
    known = {f.name for f in fields(FeederConfig)}
    out: dict[str, Any] = {}
    for raw_key, value in values.items():
        key = raw_key.replace("-", "_")
        if key not in known:
            raise ConfigError(
                raw_key, value, f"not a setting ({source}); settings are: {', '.join(sorted(known))}"
            )
        if key in _TUPLE_FIELDS and value is not None:
            if isinstance(value, str):
                value = [part.strip() for part in value.split(",") if part.strip()]
            if not isinstance(value, list | tuple):
                raise ConfigError(key, value, "a list")
            value = tuple(value)
        if key == "capacity" and value is not None and not isinstance(value, dict):
            raise ConfigError(key, value, "a table of stream = records, e.g. {book = 16384}")
        out[key] = value
    return out


def load_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML config file into raw values (validated by `build`)."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError("config", str(p), "an existing TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("config", str(p), f"valid TOML ({exc})") from None
    return _normalise(data, f"in {p}")


def build(file_values: dict[str, Any] | None = None, overrides: dict[str, Any] | None = None) -> FeederConfig:
    """File values, then CLI overrides (None means "not given"), validated."""
    merged = dict(file_values or {})
    merged.update(
        {k: v for k, v in _normalise(overrides or {}, "on the command line").items() if v is not None}
    )
    return FeederConfig(**merged)
