"""Exception families, split by who is to blame (as h11 does).

- `UsageError`: our side is wrong: a bad config, a caller misusing the API, a missing ring. Fix the
  code or the configuration; retrying does not help.
- `ExchangeError`: the exchange refused a request (it answered with an error object).
- `RemoteProtocolError`: the exchange sent something malformed or unexpected.
- `NetworkError`: the connection failed or dropped; usually recoverable by reconnecting.
- `RingError`: a shared-memory ring cannot be used as asked.

Every message names what was wrong and, where it helps, what to do about it.
"""

from __future__ import annotations

from typing import Any


class FeederError(Exception):
    """Base of every error the feeder raises on purpose."""


# --- our side ------------------------------------------------------------------------------------


class UsageError(FeederError):
    """The caller or the configuration is wrong."""


class ConfigError(UsageError, ValueError):
    """A configuration field has a bad value; names the field, the value and what is allowed."""

    def __init__(self, field: str, value: Any, allowed: str):
        self.field, self.value, self.allowed = field, value, allowed
        super().__init__(f"config field {field!r}: got {value!r}; {allowed}")


class SchemaError(UsageError):
    """A schema file is missing or inconsistent."""


class NotAuthenticated(UsageError):
    """A private method was requested but no credentials are configured."""


class SimControlError(UsageError):
    """The exchange simulator refused a control command (unknown fault, bad params, unknown change_id)."""


class ClientClosed(UsageError):
    """The connection client is closed (or gave up reconnecting); call connect() to use it again."""


class InvalidTransition(UsageError):
    """A state machine was asked for a transition its table does not allow (a bug in the caller)."""


# --- rings ---------------------------------------------------------------------------------------


class RingError(FeederError):
    """A ring cannot be used as asked."""


class RingNotFound(RingError, FileNotFoundError):
    """No ring of that name in that instance."""


class RingExists(RingError, FileExistsError):
    """A live writer already owns the ring."""


class NotARing(RingError):
    """The segment exists but is not a feeder ring (bad magic)."""


class RingVersionMismatch(RingError):
    """The ring header was written by an incompatible layout version."""


class FingerprintMismatch(RingError):
    """The ring's record layout differs from the schema this reader was built with."""


# --- the exchange --------------------------------------------------------------------------------


class ExchangeError(FeederError):
    """The exchange answered a request with an error object (code, message, data)."""

    def __init__(self, code: int, message: str, data: Any = None, method: str | None = None):
        self.code, self.message, self.data, self.method = code, message, data, method
        where = f"{method}: " if method else ""
        extra = f" ({data})" if data not in (None, {}, "") else ""
        super().__init__(f"{where}exchange error {code} {message}{extra}")


class RemoteProtocolError(FeederError):
    """The exchange sent a malformed or unexpected message."""


class BadMessage(RemoteProtocolError):
    """One field of an exchange message failed validation; names the field, the value and what is allowed."""

    def __init__(self, field: str, value: Any, expected: str):
        self.field, self.value, self.expected = field, value, expected
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(f"bad {field}: got {shown}; expected {expected}")


# --- the network ---------------------------------------------------------------------------------


class NetworkError(FeederError):
    """The connection failed, timed out or dropped."""


class ConnectionLost(NetworkError):
    """The connection dropped while a request was pending.

    `sent` tells whether the request left this process: if True the exchange may have acted on it.
    """

    def __init__(self, method: str, sent: bool, reason: str = ""):
        self.method, self.sent, self.reason = method, sent, reason
        reach = "may have reached the exchange" if sent else "was never sent"
        super().__init__(
            f"{method}: connection lost before the answer; the request {reach}. {reason}".strip()
        )


class RequestTimeout(NetworkError):
    """No answer to a request within its timeout (the request was sent)."""

    def __init__(self, method: str, timeout: float):
        self.method, self.timeout = method, timeout
        super().__init__(
            f"{method}: no answer within {timeout:g} s; the request may have reached the exchange"
        )


class RateLimited(NetworkError):
    """The local rate limiter's queue is full: the request was not sent."""


class ConnectFailed(NetworkError):
    """The client could not (re)connect and stopped trying; `advice` says what to do.

    `fatal` is True when retrying cannot help (bad credentials, handshake rejected, bad URL).
    """

    def __init__(self, message: str, advice: str, fatal: bool):
        self.advice, self.fatal = advice, fatal
        super().__init__(f"{message}. {advice}")


# --- the running system --------------------------------------------------------------------------


class OutcomeUnknown(FeederError):
    """An order request was sent but its outcome cannot be known; reconcile by label."""

    def __init__(self, method: str, label: str | None, reason: str):
        self.method, self.label, self.reason = method, label, reason
        super().__init__(
            f"{method}: outcome unknown ({reason}); the order may or may not exist: "
            f"reconcile with label {label!r} (e.g. private/get_open_orders_by_instrument)"
        )


class NoHealthyWorker(FeederError):
    """No worker can serve this request right now."""


class FeederNotRunning(FeederError):
    """No feeder supervisor is running for this instance."""
