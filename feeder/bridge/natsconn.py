"""Connecting to NATS: where, as whom, over what; secrets only from the environment or files.

`NatsConfig` holds the servers and the credentials: user and password, an nkey seed file, a `.creds` file
(JWT), and TLS (a CA to trust, a client certificate). The password comes from $FEEDER_NATS_PASSWORD or a
file; a URL with a password in it is refused (it would show in `ps` and in logs). Nothing secret appears
in a repr or a log line. `connect` retries until the server answers or the deadline passes, so a mirror
may start before its server (docker compose starts them together).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import stat
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from feeder.errors import ConfigError, NetworkError, UsageError

log = logging.getLogger("feeder.bridge")

ENV = {
    "user": "FEEDER_NATS_USER",
    "password": "FEEDER_NATS_PASSWORD",
    "password_file": "FEEDER_NATS_PASSWORD_FILE",
    "nkey_seed_file": "FEEDER_NATS_NKEY_FILE",
    "creds_file": "FEEDER_NATS_CREDS_FILE",
    "tls_ca": "FEEDER_NATS_TLS_CA",
    "tls_cert": "FEEDER_NATS_TLS_CERT",
    "tls_key": "FEEDER_NATS_TLS_KEY",
}
SCHEMES = ("nats", "tls")
RECONNECT_WAIT_S = 0.5


def _servers(url: str) -> tuple[str, ...]:
    servers = tuple(u.strip() for u in url.split(",") if u.strip())
    if not servers:
        raise ConfigError(
            "nats", url, "a NATS URL such as nats://127.0.0.1:4222 (comma-separated for several)"
        )
    for server in servers:
        parts = urlparse(server)
        if parts.scheme not in SCHEMES or not parts.hostname:
            raise ConfigError("nats", server, "nats://host:port or tls://host:port")
        if parts.password:
            raise ConfigError(
                "nats", parts._replace(netloc=f"***@{parts.hostname}:{parts.port}").geturl(),
                f"no password in the URL; put it in ${ENV['password']} or a file ({ENV['password_file']})",
            )  # fmt: skip
    return servers


def _private_file(name: str, path: str) -> str:
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise ConfigError(name, path, f"a readable file ({exc.strerror})") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(name, path, f"a file only its owner can read (chmod 600 {path})")
    return path


@dataclass(frozen=True)
class NatsConfig:
    servers: tuple[str, ...]
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    nkey_seed_file: str | None = None
    creds_file: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    name: str = "feeder"

    @classmethod
    def from_env(cls, url: str, **given: str | None) -> NatsConfig:
        """The URL plus credentials: `given` (flags) first, then the FEEDER_NATS_* environment."""
        values = {k: given.get(k) or os.environ.get(env) or None for k, env in ENV.items()}
        password, password_file = values["password"], values["password_file"]
        if password_file and not password:
            password = Path(_private_file("nats_password_file", password_file)).read_text().strip()
        for key in ("nkey_seed_file", "creds_file", "tls_key"):
            path = values[key]
            if path:
                _private_file(key, path)
        config = cls(
            _servers(url),
            user=values["user"],
            password=password,
            nkey_seed_file=values["nkey_seed_file"],
            creds_file=values["creds_file"],
            tls_ca=values["tls_ca"],
            tls_cert=values["tls_cert"],
            tls_key=values["tls_key"],
        )
        if config.password and not config.user:
            raise ConfigError("nats_user", None, f"a user for the password (--nats-user or ${ENV['user']})")
        if bool(config.tls_cert) != bool(config.tls_key):
            raise ConfigError("nats_tls_cert", config.tls_cert, "a client certificate and its key, both")
        return config

    def named(self, name: str) -> NatsConfig:
        return replace(self, name=name)

    def describe(self) -> str:
        """Where and how, for logs: never a secret."""
        how = (
            "user " + self.user
            if self.user
            else "nkey"
            if self.nkey_seed_file
            else "creds"
            if self.creds_file
            else ""
        )
        return ",".join(self.servers) + (f" ({how})" if how else "")

    def tls_context(self) -> ssl.SSLContext | None:
        if not (self.tls_ca or self.tls_cert or any(s.startswith("tls:") for s in self.servers)):
            return None
        ctx = ssl.create_default_context(cafile=self.tls_ca)
        if self.tls_cert:
            ctx.load_cert_chain(self.tls_cert, self.tls_key)
        return ctx

    def options(self) -> dict[str, Any]:
        """Keyword arguments for `nats.connect`."""
        out: dict[str, Any] = {"servers": list(self.servers), "name": self.name}
        if self.user:
            out.update(user=self.user, password=self.password or "")
        if self.nkey_seed_file:
            out["nkeys_seed"] = self.nkey_seed_file
        if self.creds_file:
            out["user_credentials"] = self.creds_file
        tls = self.tls_context()
        if tls is not None:
            out["tls"] = tls
        return out


Callback = Callable[[], Awaitable[None]]


class NatsRefused(NetworkError):
    """The NATS server refused this client (credentials, certificate): retrying cannot help."""


def _fatal(exc: BaseException) -> bool:
    """Errors that retrying cannot fix: refused credentials, a certificate that is not trusted."""
    return "authorization" in str(exc).lower() or isinstance(exc, ssl.SSLCertVerificationError)


async def connect(
    config: NatsConfig,
    timeout: float = 30.0,
    *,
    on_error: Callable[[Exception], Awaitable[None]] | None = None,
    on_disconnected: Callback | None = None,
    on_reconnected: Callback | None = None,
) -> Any:
    """A connected nats-py client that reconnects by itself, for ever. Until the first connection it
    retries for `timeout` seconds, then raises NetworkError; refused credentials raise at once."""
    try:
        from nats.aio.client import Client
    except ImportError:
        raise UsageError("NATS needs the nats extra: pip install 'feeder[nats]'") from None
    problem: list[BaseException] = []

    async def errors_seen(exc: Exception) -> None:
        problem[:] = [exc]
        if on_error is not None and nc.is_connected:
            await on_error(exc)

    nc = Client()
    attempt = asyncio.get_running_loop().create_task(
        nc.connect(
            **config.options(),
            connect_timeout=max(1, int(min(5.0, timeout))),
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=RECONNECT_WAIT_S,  # type: ignore[arg-type]  # typed int; nats-py sleeps for it
            error_cb=errors_seen,
            disconnected_cb=on_disconnected,
            reconnected_cb=on_reconnected,
        )
    )
    deadline = asyncio.get_running_loop().time() + timeout
    logged = False
    while not attempt.done():
        await asyncio.wait({attempt}, timeout=0.1)
        last = problem[0] if problem else None
        late = asyncio.get_running_loop().time() >= deadline
        if not attempt.done() and (late or (last is not None and _fatal(last))):
            attempt.cancel()
            with contextlib.suppress(BaseException):
                await attempt
            with contextlib.suppress(Exception):
                await nc.close()
            if last is not None and _fatal(last):
                raise NatsRefused(f"NATS at {config.describe()} refused this client: {last}")
            raise NetworkError(
                f"cannot connect to NATS at {config.describe()} within {timeout:g} s: {last!r}"
            )
        if last is not None and not logged:
            log.warning("waiting for NATS at %s: %r", config.describe(), last)
            logged = True
    try:
        attempt.result()
    except Exception as exc:
        raise NetworkError(f"cannot connect to NATS at {config.describe()}: {exc!r}") from None
    return nc
