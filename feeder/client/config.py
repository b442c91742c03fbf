"""The connection client's configuration, validated once, up front.

Every field is checked when the config is built: a bad one raises ConfigError(field, value, allowed)
naming what was wrong and what is allowed, so a misconfigured worker fails at start, not at 3 a.m. on
the first reconnect. Secrets (header values, credentials in the URL) never appear in repr.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from feeder.client.transport import ENGINES, picows_installed
from feeder.core.heartbeat import KINDS
from feeder.core.ratelimit import DEFAULT, CostSpec, cost_function
from feeder.core.recording import REDACTED, redact_url
from feeder.errors import ConfigError


def _number(name: str, value: Any, low: float = 0.0, inclusive: bool = False) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and value == value
    ok = ok and (value >= low if inclusive else value > low)
    if not ok:
        raise ConfigError(name, value, f"expected a number {'≥' if inclusive else '>'} {low:g}")


def _integer(name: str, value: Any, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ConfigError(name, value, f"expected an integer ≥ {low}")


def _boolean(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigError(name, value, "expected True or False")


@dataclass(frozen=True)
class RateLimit:
    """A credit bucket: `capacity` credits, refilled at `refill_per_s`; requests cost `cost(method)`.

    `cost` is a callable method -> credits, a {method or glob: credits} table ("*" = default), or a
    number (flat). For venues that limit classes of requests separately, `buckets` adds named buckets
    {name: (capacity, refill_per_s)} and the cost function returns (name, credits) for their methods.
    With `shared_dir`, every process naming the same directory and `shared_name` draws from the same
    buckets (exchange limits are per account, not per connection).
    """

    capacity: float
    refill_per_s: float
    cost: CostSpec = 1.0
    max_queue: int = 1000
    buckets: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    shared_dir: str | Path | None = None
    shared_name: str = "default"

    def __post_init__(self) -> None:
        _number("rate_limit.capacity", self.capacity)
        _number("rate_limit.refill_per_s", self.refill_per_s)
        if not isinstance(self.buckets, Mapping):
            raise ConfigError("rate_limit.buckets", self.buckets, "expected {name: (capacity, refill_per_s)}")
        for name, limits in self.buckets.items():
            if not isinstance(name, str) or not name.isidentifier() or name == DEFAULT:
                raise ConfigError(
                    "rate_limit.buckets", name, f"expected identifier names other than {DEFAULT!r}"
                )
            if not isinstance(limits, tuple | list) or len(limits) != 2:
                raise ConfigError(f"rate_limit.buckets.{name}", limits, "expected (capacity, refill_per_s)")
            _number(f"rate_limit.buckets.{name}.capacity", limits[0])
            _number(f"rate_limit.buckets.{name}.refill_per_s", limits[1])
        cost_function(self.cost, "rate_limit.cost")
        _integer("rate_limit.max_queue", self.max_queue, 1)
        if self.shared_dir is not None and not Path(self.shared_dir).is_dir():
            raise ConfigError("rate_limit.shared_dir", self.shared_dir, "expected an existing directory")
        if not self.shared_name or not self.shared_name.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(
                "rate_limit.shared_name", self.shared_name, "expected letters, digits, '-' or '_'"
            )


@dataclass(frozen=True)
class ClientConfig:
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    connect_timeout: float = 10.0
    max_retries: int | None = None  # consecutive failed attempts before giving up; None = never give up
    initial_delay: float = 0.25
    max_backoff: float = 30.0
    jitter: float = 0.2  # fraction of the delay, ±
    stable_after: float = 30.0  # a connection up this long resets the backoff
    heartbeat: str = "ping_pong"
    heartbeat_interval: float = 10.0
    max_missed_heartbeats: int = 2
    liveness_interval: float | None = 0.5  # ping while no frame came for this long; None: no liveness
    liveness_timeout: float = 1.5  # nothing proved the link for this long: dead (see feeder.core.liveness)
    reconnect_on_error: bool = True
    restore_subscriptions: bool = True
    request_timeout: float = 5.0
    close_timeout: float = 5.0
    max_frame_size: int = 16 * 1024 * 1024
    debug: bool = False
    latency_window: int = 1024
    record_to: str | Path | None = None
    rate_limit: RateLimit | None = None
    transport: str = "auto"  # WebSocket engine: "websockets", "picows" (extra feeder[picows]), "auto"

    def __post_init__(self) -> None:
        self._check_url()
        if not isinstance(self.headers, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.headers.items()
        ):
            raise ConfigError("headers", self._redacted_headers(), "expected a mapping of str to str")
        for name in ("connect_timeout", "initial_delay", "max_backoff", "stable_after", "heartbeat_interval"):
            _number(name, getattr(self, name))
        for name in ("request_timeout", "close_timeout"):
            _number(name, getattr(self, name))
        if self.max_backoff < self.initial_delay:
            raise ConfigError(
                "max_backoff", self.max_backoff, f"expected ≥ initial_delay ({self.initial_delay:g})"
            )
        if self.max_retries is not None:
            _integer("max_retries", self.max_retries, 0)
        _number("jitter", self.jitter, 0.0, inclusive=True)
        if self.jitter > 1.0:
            raise ConfigError("jitter", self.jitter, "expected a fraction between 0 and 1")
        if self.heartbeat not in KINDS:
            raise ConfigError("heartbeat", self.heartbeat, f"expected one of {', '.join(sorted(KINDS))}")
        _integer("max_missed_heartbeats", self.max_missed_heartbeats, 1)
        if self.liveness_interval is not None:
            _number("liveness_interval", self.liveness_interval)
        _number("liveness_timeout", self.liveness_timeout)
        if self.liveness_interval is not None and self.liveness_timeout <= self.liveness_interval:
            raise ConfigError(
                "liveness_timeout",
                self.liveness_timeout,
                f"expected > liveness_interval ({self.liveness_interval:g}): pings go out every interval",
            )
        for name in ("reconnect_on_error", "restore_subscriptions", "debug"):
            _boolean(name, getattr(self, name))
        _integer("max_frame_size", self.max_frame_size, 1024)
        _integer("latency_window", self.latency_window, 1)
        self._check_record_to()
        if self.transport not in ENGINES:
            raise ConfigError("transport", self.transport, f"expected one of {', '.join(ENGINES)}")
        if self.transport == "picows" and not picows_installed():
            raise ConfigError(
                "transport", self.transport, "picows is not installed: pip install 'feeder[picows]'"
            )
        if self.rate_limit is not None and not isinstance(self.rate_limit, RateLimit):
            raise ConfigError("rate_limit", self.rate_limit, "expected a feeder.client.RateLimit or None")

    def _check_url(self) -> None:
        if not isinstance(self.url, str):
            raise ConfigError("url", self.url, "expected a ws:// or wss:// URL string")
        parts = urlsplit(self.url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise ConfigError(
                "url", redact_url(self.url), "expected ws://host[:port]/path or wss://host[:port]/path"
            )
        try:
            parts.port  # noqa: B018 -- raises ValueError on a bad port
        except ValueError as e:
            raise ConfigError("url", redact_url(self.url), "expected a port between 0 and 65535") from e

    def _check_record_to(self) -> None:
        if self.record_to is None:
            return
        if not isinstance(self.record_to, str | Path) or not str(self.record_to):
            raise ConfigError("record_to", self.record_to, "expected a file path or None")
        parent = Path(self.record_to).parent
        if not parent.is_dir():
            raise ConfigError(
                "record_to", self.record_to, f"expected a path in an existing directory ({parent})"
            )

    def _redacted_headers(self) -> Any:
        if isinstance(self.headers, Mapping):
            return {k: REDACTED for k in self.headers}
        return REDACTED

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "url":
                value = redact_url(value)
            elif f.name == "headers":
                value = self._redacted_headers()
            shown.append(f"{f.name}={value!r}")
        return f"ClientConfig({', '.join(shown)})"
