"""Deribit API credentials: from the environment or a 0600 TOML file; never shown.

Where they come from, first match wins:
1. an explicit file path (`load_credentials(path=...)`),
2. `DERIBIT_CLIENT_ID` and `DERIBIT_CLIENT_SECRET` in the environment (both or neither),
3. the file named by `DERIBIT_CREDENTIALS_FILE`,
4. none: public data only.

The file is TOML with `client_id = "..."` and `client_secret = "..."`, owned by the current user and
readable by nobody else (mode 0600 or stricter); anything looser is refused rather than used. The secret
never appears in a repr, a log line or an error message.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from feeder.errors import ConfigError

ENV_ID = "DERIBIT_CLIENT_ID"
ENV_SECRET = "DERIBIT_CLIENT_SECRET"
ENV_FILE = "DERIBIT_CREDENTIALS_FILE"
REDACTED = "<redacted>"


@dataclass(frozen=True)
class Credentials:
    """A Deribit API key: the client id (not secret) and the client secret (never shown)."""

    client_id: str
    client_secret: str = field(repr=False)

    def __post_init__(self) -> None:
        for name in ("client_id", "client_secret"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(name, REDACTED if name == "client_secret" else value, "a non-empty string")

    def __repr__(self) -> str:
        return f"Credentials(client_id={self.client_id!r}, client_secret={REDACTED})"

    __str__ = __repr__

    def signature(self, timestamp_ms: int, nonce: str, data: str = "") -> str:
        """Deribit's client_signature: hex HMAC-SHA256(secret, "{timestamp}\\n{nonce}\\n{data}")."""
        message = f"{timestamp_ms}\n{nonce}\n{data}".encode()
        return hmac.new(self.client_secret.encode(), message, hashlib.sha256).hexdigest()


def load_credentials(
    path: str | Path | None = None, env: Mapping[str, str] | None = None
) -> Credentials | None:
    """Credentials from an explicit file, the environment, or $DERIBIT_CREDENTIALS_FILE; None if none."""
    env = os.environ if env is None else env
    if path is not None:
        return read_credentials_file(path)
    client_id, secret = env.get(ENV_ID), env.get(ENV_SECRET)
    if client_id or secret:
        if not (client_id and secret):
            missing = ENV_SECRET if client_id else ENV_ID
            raise ConfigError(missing, None, f"set both {ENV_ID} and {ENV_SECRET}, or neither")
        return Credentials(client_id, secret)
    if env.get(ENV_FILE):
        return read_credentials_file(env[ENV_FILE])
    return None


def read_credentials_file(path: str | Path) -> Credentials:
    """Read a TOML credentials file, refusing one that others could read or that another user owns."""
    path = Path(path)
    try:
        info = path.stat()
    except OSError as exc:
        raise ConfigError("credentials file", str(path), f"a readable file ({exc.strerror})") from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            "credentials file",
            str(path),
            f"mode 0600 (it is {stat.S_IMODE(info.st_mode):04o}): chmod 600 {path}",
        )
    if info.st_uid != os.getuid():
        raise ConfigError("credentials file", str(path), "a file owned by the user running the feeder")
    try:
        doc = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        # the parser's message may quote the file's content: keep the secret out of it
        raise ConfigError(
            "credentials file", str(path), f"TOML with client_id and client_secret ({type(exc).__name__})"
        ) from None
    unknown = set(doc) - {"client_id", "client_secret"}
    if unknown or "client_id" not in doc or "client_secret" not in doc:
        raise ConfigError(
            "credentials file",
            str(path),
            f"exactly the keys client_id and client_secret (found {sorted(doc)})",
        )
    return Credentials(doc["client_id"], doc["client_secret"])
