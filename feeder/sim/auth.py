"""public/auth: credentials, signatures, tokens and their lifetimes. Pure; time is passed in.

- `client_credentials`: client_id + client_secret.
- `client_signature`: client_id, timestamp (ms, within 60 s of the server clock), nonce, data and
  signature = hex(HMAC-SHA256(secret, f"{timestamp}\\n{nonce}\\n{data}")).
- `refresh_token`: a refresh token from an earlier grant; each works once, and does not expire
  with its access token (Deribit does not document a refresh-token lifetime).
Wrong credentials give 13004 invalid_credentials. Access tokens live `token_ttl` seconds; a token
of scope `connection` only works on the connection that got it, `session:NAME` on any.
Secrets and tokens never appear in reprs or error messages.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any

from feeder.sim.rpc import RpcError, invalid

SIGNATURE_SKEW_MS = 60_000
TOKENS_KEPT = 10_000
SCOPE_RIGHTS = "trade:read_write wallet:read_write account:read_write block_trade:read_write"


@dataclass(frozen=True)
class Grant:
    """A token pair handed out by public/auth."""

    client_id: str
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    scope: str
    expires_at: float  # monotonic seconds
    conn: int | None  # connection-scoped tokens: the connection

    def result(self, ttl: float, state: str | None) -> dict[str, Any]:
        out = {
            "access_token": self.access_token,
            "expires_in": int(ttl),
            "refresh_token": self.refresh_token,
            "scope": self.scope,
            "token_type": "bearer",
            "enabled_features": [],
        }
        if state is not None:
            out["state"] = state
        return out


class Accounts:
    """Configured credentials and the tokens handed out."""

    def __init__(self, credentials: dict[str, str], token_ttl: float):
        self._secrets = dict(credentials)
        self.token_ttl = token_ttl
        self._access: dict[str, Grant] = {}
        self._refresh: dict[str, Grant] = {}

    def __repr__(self) -> str:
        return f"Accounts(client_ids={sorted(self._secrets)}, tokens={len(self._access)})"

    def grant(self, params: dict[str, Any], now: float, wall_ms: int, conn: int | None) -> Grant:
        """Check a public/auth request and issue tokens; RpcError 13004 (or -32602) when refused."""
        kind = params["grant_type"]
        if kind == "refresh_token":
            old = self._refresh.pop(_required(params, "refresh_token"), None)
            if old is None:
                raise RpcError(13004, {"reason": "refresh_token is unknown or already used"})
            return self._issue(old.client_id, old.scope, now, conn)
        client_id = _required(params, "client_id")
        secret = self._secrets.get(client_id)
        if kind == "client_credentials":
            ok = secret is not None and hmac.compare_digest(secret, _required(params, "client_secret"))
        else:
            ok = secret is not None and self._signature_ok(secret, params, wall_ms)
        if not ok:
            raise RpcError(13004)
        return self._issue(client_id, _scope(params.get("scope")), now, conn)

    def _signature_ok(self, secret: str, params: dict[str, Any], wall_ms: int) -> bool:
        timestamp = params.get("timestamp")
        if timestamp is None:
            raise invalid("timestamp", "value required")
        signature = _required(params, "signature")
        if abs(wall_ms - timestamp) > SIGNATURE_SKEW_MS:
            return False
        text = f"{timestamp}\n{params.get('nonce', '')}\n{params.get('data', '')}"
        expected = hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, signature.lower())

    def _issue(self, client_id: str, scope: str, now: float, conn: int | None) -> Grant:
        session = scope.startswith("session:")
        grant = Grant(
            client_id,
            secrets.token_urlsafe(24),
            secrets.token_urlsafe(24),
            f"{scope.split()[0]} {SCOPE_RIGHTS}",
            now + self.token_ttl,
            None if session else conn,
        )
        self._access[grant.access_token] = grant
        self._refresh[grant.refresh_token] = grant
        self._prune(now)
        return grant

    def check(self, access_token: str, now: float, conn: int | None) -> Grant:
        """The grant behind a token usable here and now; 13009 otherwise."""
        grant = self._access.get(access_token)
        if grant is None:
            raise RpcError(13009, {"reason": "invalid_token"})
        if grant.expires_at <= now:
            raise RpcError(13009, {"reason": "token_expired"})
        if grant.conn is not None and grant.conn != conn:
            raise RpcError(13009, {"reason": "connection-scoped token used on another connection"})
        return grant

    def revoke(self, grant: Grant) -> None:
        self._access.pop(grant.access_token, None)
        self._refresh.pop(grant.refresh_token, None)

    def _prune(self, now: float) -> None:
        """Keep memory bounded: expired access tokens go first, then the oldest of each kind."""
        if len(self._access) > TOKENS_KEPT:
            for token in [t for t, g in self._access.items() if g.expires_at <= now]:
                del self._access[token]
        for tokens in (self._access, self._refresh):
            while len(tokens) > TOKENS_KEPT:
                del tokens[next(iter(tokens))]


def _required(params: dict[str, Any], name: str) -> str:
    value: str | None = params.get(name)  # checked against public/auth's params (params.py): strings
    if not value:
        raise invalid(name, "value required")
    return value


def _scope(scope: str | None) -> str:
    if not scope:
        return "connection"
    first = scope.split()[0]
    return first if first == "connection" or first.startswith("session:") else "connection"


def sign(secret: str, timestamp: int, nonce: str, data: str = "") -> str:
    """The client_signature signature (what a client computes; used by tests and examples)."""
    return hmac.new(secret.encode(), f"{timestamp}\n{nonce}\n{data}".encode(), hashlib.sha256).hexdigest()
