"""Why a connection failed, whether retrying can help, and what a person should do about it.

`explain(error)` → Explanation(category, message, advice). Categories:
- recoverable: network errors, resets, timeouts, 5xx/408 handshake answers, a dead heartbeat, a server
  that says "retry" or "maintenance": reconnect with backoff;
- rate_limited: HTTP 429 or an exchange `too_many_requests`: reconnect, but only after credits refill;
- fatal: our side is wrong (bad URL, bad config, 4xx handshake rejection, bad credentials, TLS
  verification) or the exchange refused a setup request for good: stop retrying and say why.
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
_CREDENTIAL_WORDS = ("credential", "unauthorized", "forbidden", "authorization_required", "invalid_token")
_TRANSIENT_WORDS = (
    "maintenance",
    "temporarily",
    "internal_server_error",
    "timed_out",
    "retry",
    "queue_full",
    "too_many_concurrent",
)


MESSAGE_TOO_BIG = 1009  # WebSocket close code: a frame exceeded max_size


def close_code(error: ConnectionClosed) -> int | None:
    """The close code received, else the one sent, else None (the TCP connection just died)."""
    frame = error.rcvd or error.sent
    return frame.code if frame is not None else None


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
            msg,
            "The account ran out of request credits (the exchange may close the session): wait for them to "
            "refill, then lower the request rate or fix the limiter's cost table.",
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
