"""Deribit `public/auth` as data: request params, the token it returns, and when to refresh it.

Pure (the caller supplies the clock and the nonce). Rules it keeps:
- Grants: `client_credentials` (id + secret) or `client_signature` (id + HMAC over timestamp, nonce and
  data; the secret never leaves the process). Refresh uses `refresh_token`.
- A token is refreshed at `REFRESH_FRACTION` of its lifetime; after a reconnect the session logs in
  afresh (a `connection`-scoped token dies with the connection).
- Tokens and secrets never appear in reprs: `Token` shows only its scope and expiry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from feeder.errors import BadMessage, ConfigError
from feeder.exchanges.deribit.credentials import Credentials

GRANTS = ("client_credentials", "client_signature")
REFRESH_FRACTION = 0.8


def login_params(
    credentials: Credentials, grant: str, *, now_ms: int, nonce: str, scope: str | None = None
) -> dict[str, Any]:
    """Params of a `public/auth` login with `grant`."""
    if grant == "client_credentials":
        params: dict[str, Any] = {
            "grant_type": grant,
            "client_id": credentials.client_id,
            "client_secret": credentials.client_secret,
        }
    elif grant == "client_signature":
        params = {
            "grant_type": grant,
            "client_id": credentials.client_id,
            "timestamp": now_ms,
            "nonce": nonce,
            "data": "",
            "signature": credentials.signature(now_ms, nonce, ""),
        }
    else:
        raise ConfigError("grant", grant, f"one of {', '.join(GRANTS)}")
    if scope:
        params["scope"] = scope
    return params


@dataclass(frozen=True)
class Token:
    """An access token and when it must be refreshed (times on the caller's monotonic clock, in s)."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    scope: str
    obtained_at: float
    expires_at: float

    @property
    def refresh_at(self) -> float:
        return self.obtained_at + (self.expires_at - self.obtained_at) * REFRESH_FRACTION


def refresh_params(token: Token) -> dict[str, Any]:
    """Params of a `public/auth` refresh."""
    return {"grant_type": "refresh_token", "refresh_token": token.refresh_token}


def parse_auth_result(result: Any, now: float) -> Token:
    """The token in a `public/auth` result; BadMessage if it lacks what the session needs."""
    if type(result) is not dict:
        raise BadMessage("auth result", type(result).__name__, "an object")
    for name in ("access_token", "refresh_token"):
        if type(result.get(name)) is not str or not result[name]:
            raise BadMessage(name, "<redacted>", "a non-empty string")
    expires_in = result.get("expires_in")
    if type(expires_in) is not int or expires_in <= 0:
        raise BadMessage("expires_in", expires_in, "a positive integer (seconds)")
    scope = result.get("scope", "")
    if type(scope) is not str:
        raise BadMessage("scope", scope, "a string")
    return Token(result["access_token"], result["refresh_token"], scope, now, now + expires_in)
