"""The Deribit session on one connection client: login, token refresh, cancel-on-disconnect, orders.

A thin asyncio shell over `auth.py`. Rules it keeps:
- `on_connected(setup)` (the client's post-connect hook, run before subscriptions are restored) says
  who it is with `public/hello` when the config names the connection (`client_name`: which worker and
  leg; it goes alongside the login, so it costs no round trip), logs in afresh after every (re)connect, then, on a connection that trades, enables cancel-on-disconnect
  and reads it back with get_cancel_on_disconnect: a connection where it is not on is dropped (and
  retried) rather than used. Bad credentials stop the client's retries (its failure classification).
- The token is refreshed at 80 % of its lifetime; a failed refresh falls back to a new login, and an
  expired token with no way to renew it replaces the connection.
- Without credentials only public methods go out; a private method fails at once with
  `NotAuthenticated` saying how to configure credentials.
- Orders pass through with Deribit's params and results, at most once: an order whose answer is lost
  (connection dropped after sending, or timed out) raises `OutcomeUnknown` with the order's label; a
  new order without a label gets a generated one first (`labels.py`), echoed in the result.
  Exchange refusals surface as `ExchangeError(code, message, data)`.
- No secret or token is ever logged.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from feeder.errors import (
    BadMessage,
    ConfigError,
    ConnectionLost,
    ExchangeError,
    NetworkError,
    NotAuthenticated,
    OutcomeUnknown,
    RemoteProtocolError,
    RequestTimeout,
    UsageError,
)
from feeder.exchanges.deribit.auth import GRANTS, Token, login_params, parse_auth_result, refresh_params
from feeder.exchanges.deribit.credentials import ENV_FILE, ENV_ID, ENV_SECRET, Credentials
from feeder.exchanges.deribit.labels import with_label
from feeder.exchanges.methods import is_private, is_read_only

if TYPE_CHECKING:
    from feeder.client import Client, Setup

log = logging.getLogger(__name__)

COD_SCOPES = ("connection", "account")
try:
    VERSION = importlib.metadata.version("feeder")
except importlib.metadata.PackageNotFoundError:  # run from a checkout that is not installed
    VERSION = "0"
_RETRY_REFRESH_S = 5.0


@dataclass(frozen=True)
class SessionConfig:
    """Who the session logs in as and how; validated at construction."""

    credentials: Credentials | None = None
    grant: str = "client_credentials"  # or client_signature (the secret never goes on the wire)
    scope: str | None = None  # public/auth scope, e.g. "session:feeder-1"; None: Deribit's default
    cancel_on_disconnect: str | None = "connection"  # scope, or None to leave it off
    client_name: str | None = (
        None  # said in public/hello on every connection (e.g. "feeder-w0-a"); None: none
    )

    def __post_init__(self) -> None:
        if self.credentials is not None and not isinstance(self.credentials, Credentials):
            raise ConfigError("credentials", type(self.credentials).__name__, "a Credentials or None")
        if self.grant not in GRANTS:
            raise ConfigError("grant", self.grant, f"one of {', '.join(GRANTS)}")
        if self.cancel_on_disconnect is not None and self.cancel_on_disconnect not in COD_SCOPES:
            raise ConfigError(
                "cancel_on_disconnect", self.cancel_on_disconnect, "'connection', 'account' or None"
            )
        if self.client_name is not None and not (isinstance(self.client_name, str) and self.client_name):
            raise ConfigError("client_name", self.client_name, "a non-empty string or None")


def subscribe_method(channel: str) -> str:
    """Private (user.*) channels go through private/subscribe, market data through public/subscribe."""
    return "private/subscribe" if channel.startswith("user.") else "public/subscribe"


def unsubscribe_method(channel: str) -> str:
    return "private/unsubscribe" if channel.startswith("user.") else "public/unsubscribe"


class DeribitSession:
    """Authentication and order passthrough for one `Client` (see the module doc)."""

    def __init__(self, config: SessionConfig | None = None):
        self.config = config or SessionConfig()
        self.client: Client | None = None
        self.token: Token | None = None
        self.cod_enabled = False
        self.logins = self.refreshes = self.refresh_failures = 0
        self.last_error = ""
        self._refresher: asyncio.Task[None] | None = None

    @property
    def has_credentials(self) -> bool:
        return self.config.credentials is not None

    @property
    def authenticated(self) -> bool:
        """Logged in on the current connection."""
        return self.token is not None

    def bind(self, client: Client) -> None:
        """The client this session sends through (the one whose hooks call it)."""
        self.client = client

    # --- client hooks ---------------------------------------------------------------------------

    async def on_connected(self, setup: Setup) -> None:
        """Post-connect setup: hello (alongside), log in, enable and verify cancel-on-disconnect, schedule
        the refresh."""
        self.client = setup.client
        self._stop_refresh()
        self.token, self.cod_enabled = None, False
        if self.config.client_name is None:
            await self._log_in(setup)
        else:
            await asyncio.gather(self._hello(setup, self.config.client_name), self._log_in(setup))

    async def _hello(self, setup: Setup, name: str) -> None:
        """public/hello: the exchange (and the simulator's fault targeting) knows the connection by name."""
        try:
            await setup.request("public/hello", {"client_name": name, "client_version": VERSION})
        except (ExchangeError, NetworkError) as exc:  # a courtesy: the connection serves without it
            log.info("public/hello as %s was not answered: %s", name, exc)

    async def _log_in(self, setup: Setup) -> None:
        if self.config.credentials is None:
            return
        self.token = await self._login(setup)
        scope = self.config.cancel_on_disconnect
        if scope is not None:
            await setup.request("private/enable_cancel_on_disconnect", {"scope": scope})
            state = await setup.request("private/get_cancel_on_disconnect", {"scope": scope})
            if type(state) is not dict or state.get("enabled") is not True:
                raise RemoteProtocolError(
                    f"cancel-on-disconnect ({scope}) reads back as {state!r} after enabling it; "
                    "not trading on this connection"
                )
            self.cod_enabled = True
        self._refresher = asyncio.get_running_loop().create_task(
            self._refresh_loop(setup.client), name="deribit-token-refresh"
        )

    def on_disconnected(self) -> None:
        """The connection is gone, and with it a connection-scoped token."""
        self._stop_refresh()
        self.token, self.cod_enabled = None, False

    async def close(self) -> None:
        task = self._stop_refresh()
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

    def _stop_refresh(self) -> asyncio.Task[None] | None:
        task, self._refresher = self._refresher, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        return task

    async def _login(self, client: Client | Setup) -> Token:
        credentials = self.config.credentials
        assert credentials is not None
        params = login_params(
            credentials,
            self.config.grant,
            now_ms=time.time_ns() // 1_000_000,
            nonce=secrets.token_hex(8),
            scope=self.config.scope,
        )
        token = parse_auth_result(await client.request("public/auth", params), time.monotonic())
        self.logins += 1
        log.info(
            "logged in to Deribit as %s (%s, scope %r)", credentials.client_id, self.config.grant, token.scope
        )
        return token

    async def _refresh_loop(self, client: Client) -> None:
        while self.token is not None:
            await asyncio.sleep(max(0.0, self.token.refresh_at - time.monotonic()))
            try:
                result = await client.request("public/auth", refresh_params(self.token))
                self.token = parse_auth_result(result, time.monotonic())
                self.refreshes += 1
            except (ExchangeError, BadMessage, RequestTimeout) as exc:
                self.refresh_failures += 1
                self.last_error = f"token refresh failed: {exc}"
                log.warning("Deribit %s; logging in again", self.last_error)
                await self._login_again(client)
            except NetworkError:
                return  # the connection is going away: on_connected logs in on the next one

    async def _login_again(self, client: Client) -> None:
        try:
            self.token = await self._login(client)
        except (ExchangeError, BadMessage, RequestTimeout) as exc:
            self.last_error = f"login after a failed refresh failed: {exc}"
            token = self.token
            if token is not None and time.monotonic() >= token.expires_at:
                log.error("Deribit %s and the token has expired: replacing the connection", self.last_error)
                self.token = None
                await client.reconnect()
                return
            log.warning("Deribit %s; trying again in %g s", self.last_error, _RETRY_REFRESH_S)
            await asyncio.sleep(_RETRY_REFRESH_S)

    # --- requests --------------------------------------------------------------------------------

    async def rpc(
        self, method: str, params: dict[str, Any] | None = None, timeout: float | None = None
    ) -> Any:
        """Send any Deribit method; orders at most once (see the module doc)."""
        client = self.client
        if client is None:
            raise UsageError(f"{method}: the session is not bound to a client yet (start the feed first)")
        if is_private(method) and self.config.credentials is None:
            raise NotAuthenticated(
                f"{method} needs an authenticated connection, and this feeder has no Deribit credentials: "
                f"set {ENV_ID} and {ENV_SECRET}, or {ENV_FILE} naming a 0600 TOML file"
            )
        params, label = with_label(method, params)
        try:
            return await client.request(method, params, timeout)
        except (ConnectionLost, RequestTimeout) as exc:
            sent = getattr(exc, "sent", True)
            if sent and not is_read_only(method):
                raise OutcomeUnknown(method, label, str(exc)) from exc
            raise

    # The order methods below return Deribit's results as decoded, typed as the spec documents them but
    # not checked: an order's answer reaches the caller as it came (refusing a surprising shape could make
    # a caller retry an order that went through).

    async def buy(self, **params: Any) -> dict[str, Any]:
        """private/buy with Deribit's params (instrument_name, amount, type, price, label, ...)."""
        result: dict[str, Any] = await self.rpc("private/buy", params)
        return result

    async def sell(self, **params: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self.rpc("private/sell", params)
        return result

    async def edit(self, **params: Any) -> dict[str, Any]:
        """private/edit (order_id, amount, price, ...)."""
        result: dict[str, Any] = await self.rpc("private/edit", params)
        return result

    async def cancel(self, order_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.rpc("private/cancel", {"order_id": order_id})
        return result

    async def cancel_all(self, **params: Any) -> int:
        """private/cancel_all; returns how many orders were cancelled."""
        count: int = await self.rpc("private/cancel_all", params)
        return count

    async def get_open_orders_by_instrument(
        self, instrument_name: str, **params: Any
    ) -> list[dict[str, Any]]:
        orders: list[dict[str, Any]] = await self.rpc(
            "private/get_open_orders_by_instrument", {"instrument_name": instrument_name, **params}
        )
        return orders

    def metrics(self) -> dict[str, Any]:
        token = self.token
        return {
            "credentials": self.has_credentials,
            "authenticated": self.authenticated,
            "cancel_on_disconnect": self.cod_enabled,
            "logins": self.logins,
            "refreshes": self.refreshes,
            "refresh_failures": self.refresh_failures,
            "token_expires_in_s": None if token is None else round(token.expires_at - time.monotonic(), 1),
            "last_error": self.last_error,
        }
