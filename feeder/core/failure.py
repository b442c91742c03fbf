"""Why a connection failed, whether retrying can help, and what a person should do about it.

`explain(error)` → Explanation(category, message, advice). Categories:
- recoverable: network errors, resets, timeouts, 5xx/408 handshake answers, a dead heartbeat, a server
  that says "retry" or "maintenance": reconnect with backoff;
- rate_limited: HTTP 429, or the exchange asks us to slow down (`asks_to_slow_down`): out of credits
  (`too_many_requests`), or overloaded by requests (`matching_engine_queue_full`,
  `too_many_concurrent_requests`): drain the credits, reconnect only after they refill;
- fatal: our side is wrong (bad URL, bad config, 4xx handshake rejection, bad credentials, TLS
  verification) or the exchange refused a setup request for good: stop retrying and say why.
"Try again later" answers that sending less would not help (`retry`, `temporarily_unavailable`,
`settlement_in_progress`, `system_maintenance`) are recoverable, not rate-limited.
Exchange errors are classified by their message name (venues send snake_case names such as
`too_many_requests`, `invalid_credentials`), so no venue's numeric table is needed here.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from enum import Enum

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from feeder.errors import ConnectFailed, ExchangeError, NetworkError, RemoteProtocolError, UsageError


class Category(Enum):
    RECOVERABLE = "recoverable"
    RATE_LIMITED = "rate_limited"
    FATAL = "fatal"


@dataclass(frozen=True)
class Explanation:
    category: Category
    message: str
    advice: str

    @property
    def fatal(self) -> bool:
        return self.category is Category.FATAL

    def __str__(self) -> str:
        return f"{self.message} ({self.category.value}). {self.advice}"


_RATE_WORDS = ("too_many_requests", "rate_limit", "rate limit")
_OVERLOAD_WORDS = ("queue_full", "too_many_concurrent")
_CREDENTIAL_WORDS = ("credential", "unauthorized", "forbidden", "authorization_required", "invalid_token")
_TRANSIENT_WORDS = ("maintenance", "temporarily", "internal_server_error", "timed_out", "retry", "settlement")


MESSAGE_TOO_BIG = 1009  # WebSocket close code: a frame exceeded max_size


def close_code(error: ConnectionClosed) -> int | None:
    """The close code received, else the one sent, else None (the TCP connection just died)."""
    frame = error.rcvd or error.sent
    return frame.code if frame is not None else None


def asks_to_slow_down(error: BaseException) -> bool:
    """The exchange answered that we send too much (out of credits, or overloaded by our requests)."""
    return isinstance(error, ExchangeError) and _exchange(error).category is Category.RATE_LIMITED


def refused(error: BaseException) -> bool:
    """A connect attempt the server turned away: HTTP 429 at the handshake, or the TCP connect refused."""
    if isinstance(error, InvalidStatus):
        return error.response.status_code == 429
    return isinstance(error, ConnectionRefusedError)


def explain(error: BaseException) -> Explanation:
    """Classify `error` and say what to do about it."""
    if isinstance(error, ConnectFailed):
        return Explanation(Category.FATAL if error.fatal else Category.RECOVERABLE, str(error), error.advice)
    if isinstance(error, ExchangeError):
        return _exchange(error)
    if isinstance(error, InvalidStatus):
        return _status(error.response.status_code)
    if isinstance(error, InvalidURI):
        return Explanation(
            Category.FATAL, f"bad WebSocket URL: {error}", "Fix `url` (ws://host[:port]/path or wss://…)."
        )
    if isinstance(error, ssl.SSLCertVerificationError):
        return Explanation(
            Category.FATAL,
            f"TLS certificate rejected: {error}",
            "Check the host name and the system CA bundle.",
        )
    if isinstance(error, UsageError):
        return Explanation(
            Category.FATAL, str(error), "Fix the configuration or the call; retrying cannot help."
        )
    return _network(error)


def _network(error: BaseException) -> Explanation:
    text = str(error) or type(error).__name__
    if isinstance(error, ConnectionClosed):
        if close_code(error) == MESSAGE_TOO_BIG:
            return Explanation(
                Category.RECOVERABLE,
                f"a frame exceeded max_frame_size and the connection was closed ({text})",
                "Reconnecting; raise max_frame_size if the exchange really sends frames that large.",
            )
        return Explanation(Category.RECOVERABLE, f"connection closed: {text}", "Reconnecting with backoff.")
    if isinstance(error, TimeoutError):
        return Explanation(
            Category.RECOVERABLE, f"timed out: {text}", "Reconnecting with backoff; check the network path."
        )
    if isinstance(error, InvalidHandshake | RemoteProtocolError | NetworkError | OSError):
        return Explanation(
            Category.RECOVERABLE,
            f"{type(error).__name__}: {text}",
            "Reconnecting with backoff; if it persists check the host, port and network.",
        )
    return Explanation(
        Category.FATAL, f"unexpected {type(error).__name__}: {text}", "This is a bug; report it."
    )


def _status(status: int) -> Explanation:
    msg = f"WebSocket handshake rejected with HTTP {status}"
    if status == 429:
        return Explanation(
            Category.RATE_LIMITED, msg, "Too many connections or requests: waiting before reconnecting."
        )
    if status >= 500 or status == 408:
        return Explanation(Category.RECOVERABLE, msg, "The server is failing; reconnecting with backoff.")
    if status in (401, 403):
        return Explanation(Category.FATAL, msg, "Check the credentials or headers sent with the handshake.")
    return Explanation(
        Category.FATAL, msg, "Check the URL path and headers; the server will not accept them as they are."
    )


def _exchange(error: ExchangeError) -> Explanation:
    name = error.message.lower()
    msg = str(error)
    if any(w in name for w in _RATE_WORDS):
        return Explanation(
            Category.RATE_LIMITED,
            f"{msg}: the account ran out of request credits; the exchange refuses requests and closes the "
            "session",
            "The client drains its credits and reconnects once they have refilled (plus jitter). To stop "
            "it recurring: lower the request rate, check the account's tier (its matching-engine limit) "
            "and make rate_limit's cost table charge what the exchange charges.",
        )
    if any(w in name for w in _OVERLOAD_WORDS):
        return Explanation(
            Category.RATE_LIMITED,
            f"{msg}: the exchange is overloaded by requests (too many in flight or queued)",
            "The client drains its credits so that requests go at the sustained rate only; if it recurs, "
            "send fewer requests at once (orders especially) or lower rate_limit's refill rate.",
        )
    if any(w in name for w in _CREDENTIAL_WORDS):
        return Explanation(Category.FATAL, msg, "Check the API key id and secret, and the key's scopes.")
    if any(w in name for w in _TRANSIENT_WORDS):
        return Explanation(
            Category.RECOVERABLE, msg, "The exchange asks to try again later; retrying with backoff."
        )
    return Explanation(
        Category.FATAL, msg, "The exchange refused the request as sent; fix the method or its params."
    )
