"""The simulator's configuration: one validated, JSON-serialisable object.

Defaults are Deribit's behaviour (10 s minimum heartbeat, 15 min tokens, 10 min idle close,
32 connections per IP, rate limits on, the exchange clock on the wall clock). Tests shorten the
clocks, cut the option chain down and may run the exchange clock faster; benchmarks switch rate
limits off. `DEMO_CREDENTIALS` is the pair a simulator accepts when none are given (documented, public:
it is only ever valid against the simulator).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, TypeGuard

from feeder.errors import ConfigError
from feeder.sim.chain import ChainSize
from feeder.sim.instruments import DEFAULT_ACTIVE, PERPETUAL_EXPIRY_MS

DEMO_CLIENT_ID = "demo-id"
DEMO_CLIENT_SECRET = "demo-secret"
DEMO_CREDENTIALS = {DEMO_CLIENT_ID: DEMO_CLIENT_SECRET}


@dataclass(frozen=True)
class SimConfig:
    host: str = "127.0.0.1"
    port: int = 0  # 0: pick a free port
    instruments: tuple[str, ...] | int = DEFAULT_ACTIVE  # names and glob patterns, or a count to generate
    rate: float = 1000.0  # book updates per second across the active instruments; 0: only publish()
    option_expiries: int | None = 3  # the nearest N option expiries per currency; None: all Deribit lists
    option_strikes: int | None = 9  # strikes per option expiry, nearest the money; None: Deribit's width
    clock_speed: float = 1.0  # simulated seconds per wall second (the exchange clock: expiries come sooner)
    start_ms: int | None = None  # the exchange clock at start (ms since the epoch); None: now
    settlement_grace: float = 1.0  # wall seconds from settled or closed to terminated
    instrument_states: str = (
        "classic"  # instrument.state names: the vendored spec's, or "book" (Deribit 2026)
    )
    seed: int = 1
    credentials: dict[str, str] = field(default_factory=lambda: dict(DEMO_CREDENTIALS), repr=False)
    rate_limits: bool = True
    matching_limit: tuple[float, float] = (5.0, 20.0)  # the account's matching-engine requests/s, burst
    min_heartbeat_interval: float = 10.0
    token_ttl: float = 900.0  # seconds an access token lives (expires_in)
    idle_timeout: float = 600.0  # close a connection that sent nothing for this long
    max_connections_per_ip: int = 32
    truth_window: int = 200_000  # recent book changes kept in memory, split over the instruments
    truth_log: str | None = None
    send_buffer_limit: int = 64 * 1024 * 1024  # unsent bytes before a slow consumer is reset
    sent_window: int = 200_000  # book notification send records kept, split over the active instruments
    tls: bool = False  # serve wss:// and https:// (a self-signed certificate unless tls_cert/tls_key)
    tls_cert: str | None = None
    tls_key: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.instruments, list):
            object.__setattr__(self, "instruments", tuple(self.instruments))
        if isinstance(self.matching_limit, list):
            object.__setattr__(self, "matching_limit", tuple(self.matching_limit))
        _check(isinstance(self.host, str) and bool(self.host), "host", self.host, "a host name or address")
        _check(_int(self.port) and 0 <= self.port <= 65535, "port", self.port, "0..65535 (0: any free port)")
        ok = (_int(self.instruments) and self.instruments > 0) or (
            isinstance(self.instruments, tuple)
            and len(self.instruments) > 0
            and all(isinstance(i, str) for i in self.instruments)
        )
        _check(ok, "instruments", self.instruments, "a list of instrument names or a positive count")
        _check(_num(self.rate) and self.rate >= 0, "rate", self.rate, "book updates per second, >= 0")
        for name in ("option_expiries", "option_strikes"):
            value = getattr(self, name)
            _check(
                value is None or (_int(value) and value > 0), name, value, "a positive integer, or None: all"
            )
        _check(
            _num(self.clock_speed) and 0 < self.clock_speed <= 1e7,
            "clock_speed",
            self.clock_speed,
            "simulated seconds per wall second, > 0 and at most 1e7",
        )
        _check(
            self.start_ms is None or (_int(self.start_ms) and 0 < self.start_ms < PERPETUAL_EXPIRY_MS),
            "start_ms",
            self.start_ms,
            "ms since the Unix epoch (or None: now)",
        )
        _check(
            self.instrument_states in ("classic", "book"),
            "instrument_states",
            self.instrument_states,
            "classic (created, started, settled, closed, terminated) or book (open, delivered, ...)",
        )
        _check(
            _num(self.settlement_grace) and self.settlement_grace >= 0,
            "settlement_grace",
            self.settlement_grace,
            "seconds >= 0",
        )
        _check(_int(self.seed), "seed", self.seed, "an integer")
        creds_ok = isinstance(self.credentials, dict) and all(
            isinstance(k, str) and k and isinstance(v, str) and v for k, v in self.credentials.items()
        )
        _check(
            creds_ok, "credentials", "<hidden>", "a mapping of non-empty client_id to client_secret strings"
        )
        _check(isinstance(self.rate_limits, bool), "rate_limits", self.rate_limits, "true or false")
        _check(
            isinstance(self.matching_limit, tuple)
            and len(self.matching_limit) == 2
            and all(_num(x) and x > 0 for x in self.matching_limit),
            "matching_limit",
            self.matching_limit,
            "(requests per second, burst), both > 0 (Deribit tier 4: (5, 20))",
        )
        for name in ("min_heartbeat_interval", "token_ttl", "idle_timeout"):
            value = getattr(self, name)
            _check(_num(value) and value > 0, name, value, "a positive number of seconds")
        for name in ("max_connections_per_ip", "truth_window", "send_buffer_limit", "sent_window"):
            value = getattr(self, name)
            _check(_int(value) and value > 0, name, value, "a positive integer")
        _check(
            self.truth_log is None or isinstance(self.truth_log, str), "truth_log", self.truth_log, "a path"
        )
        _check(isinstance(self.tls, bool), "tls", self.tls, "true or false")
        _check(
            (self.tls_cert is None) == (self.tls_key is None),
            "tls_cert",
            self.tls_cert,
            "give tls_cert and tls_key together (or neither: a self-signed certificate is made)",
        )

    @property
    def chain(self) -> ChainSize:
        return ChainSize(self.option_expiries, self.option_strikes)

    @property
    def scheme(self) -> tuple[str, str]:
        """The (WebSocket, HTTP) URL schemes."""
        return ("wss", "https") if self.tls else ("ws", "http")

    def with_certificate(self, directory: str) -> SimConfig:
        """This config, with a self-signed certificate made in `directory` if TLS needs one."""
        if not self.tls or self.tls_cert is not None:
            return self
        from feeder.sim.tls import make_self_signed

        cert, key = make_self_signed(directory)
        return replace(self, tls_cert=cert, tls_key=key)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["instruments"] = (
            list(self.instruments) if isinstance(self.instruments, tuple) else self.instruments
        )
        out["matching_limit"] = list(self.matching_limit)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SimConfig:
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError("sim", sorted(unknown), f"known fields are {sorted(cls.__dataclass_fields__)}")
        return cls(**data)


def _int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check(ok: bool, name: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(name, value, f"expected {allowed}")
