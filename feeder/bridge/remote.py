"""`FeederHandle(nats=...)` / `await AsyncFeederHandle.connect(nats=...)`: the handle of a feeder on another
host, through the `feeder mirror --orders` running there (orders.py says the rules). Same calls, same
errors, same at-most-once promise as the local handle.

`nats` is a URL (credentials then come from the FEEDER_NATS_* environment, see natsconn.py) or a
`NatsConfig`; without it, `$FEEDER_HANDLE_NATS` does the same for programs that make a plain
`FeederHandle()`, so a strategy runs unchanged on another host. `instance` names the remote feeder (its
mirror's `--source`, by default its instance name).
The synchronous handle runs its NATS connection on a thread of its own, so it can be shared by threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from typing import Any

from feeder import errors
from feeder.bridge.natsconn import NatsConfig, NatsRefused, connect
from feeder.bridge.orders import TRANSIT_MARGIN_S, decode_reply, encode_request
from feeder.bridge.wire import Subjects
from feeder.exchanges.deribit.labels import with_label
from feeder.exchanges.methods import is_read_only
from feeder.ring.names import instance_name
from feeder.runtime.handle import (
    DEFAULT_TIMEOUT,
    ENV_NATS,
    STATUS_METHOD,
    AsyncFeederHandle,
    FeederHandle,
    lost_error,
)


def _config(nats: str | NatsConfig) -> NatsConfig:
    return nats if isinstance(nats, NatsConfig) else NatsConfig.from_env(nats)


async def _reach(config: NatsConfig, timeout: float) -> Any:
    """A NATS connection for a handle: no server there means no feeder to talk to (FeederNotRunning)."""
    try:
        return await connect(config, timeout)
    except NatsRefused:
        raise
    except errors.NetworkError as exc:
        raise errors.FeederNotRunning(
            f"{exc}; the feeder is reached through NATS ($FEEDER_HANDLE_NATS)"
        ) from None


async def request(
    nc: Any,
    subject: str,
    method: str,
    params: dict[str, Any],
    timeout: float,
    margin: float = TRANSIT_MARGIN_S,
) -> Any:
    """One request over NATS, sent at most once; the reply's result, or the error it stands for. The
    reply is awaited `margin` seconds beyond `timeout`, which the answering side enforces."""
    import nats.errors

    params = with_label(method, dict(params or {}))[0]  # an order is always reconcilable by its label
    if not nc.is_connected:
        raise errors.ConnectionLost(method, sent=False, reason="not connected to NATS (reconnecting)")
    try:
        msg = await nc.request(subject, encode_request(method, params, timeout), timeout=timeout + margin)
    except nats.errors.NoRespondersError:
        raise errors.FeederNotRunning(
            f"{method}: nothing answers on {subject} (start `feeder mirror --orders` on the feeder host); "
            f"the request was not sent"
        ) from None
    except (TimeoutError, nats.errors.TimeoutError):
        if is_read_only(method):
            raise errors.RequestTimeout(method, timeout) from None
        raise lost_error(method, params, f"no answer over NATS within {timeout + margin:g} s") from None
    except (nats.errors.Error, OSError, RuntimeError) as exc:  # RuntimeError: uvloop's closed transport
        raise lost_error(method, params, f"NATS: {exc!r}") from None
    return decode_reply(msg.data)


class RemoteFeederHandle(FeederHandle):
    """FeederHandle over NATS; made by `FeederHandle(nats=...)`."""

    def __init__(
        self, instance: str | None = None, connect_timeout: float = 5.0, nats: str | NatsConfig | None = None
    ):
        nats = os.environ.get(ENV_NATS) if nats is None else nats
        if not nats:
            raise errors.UsageError(f"a FeederHandle over NATS needs nats=URL, a NatsConfig or ${ENV_NATS}")
        self.instance = instance_name(instance)
        self._subject = Subjects(self.instance).orders
        self._pid = os.getpid()
        self._closed = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="feeder-nats-handle", daemon=True)
        self._thread.start()
        config = _config(nats).named(f"feeder-handle-{self.instance}")
        try:
            self._nc = self._call(_reach(config, connect_timeout), connect_timeout + 5)
        except BaseException:
            self._stop_loop()
            raise

    def _call(self, coro: Any, timeout: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def rpc(self, method: str, params: dict[str, Any] | None = None, timeout: float = DEFAULT_TIMEOUT) -> Any:
        if os.getpid() != self._pid:
            raise errors.UsageError("this FeederHandle was created in another process; create one after fork")
        if self._closed:
            raise errors.FeederNotRunning(f"{method}: the handle is closed")
        params = dict(params or {})
        return self._call(
            request(self._nc, self._subject, method, params, timeout), timeout + 2 * TRANSIT_MARGIN_S
        )

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = self.rpc(STATUS_METHOD)  # the supervisor's status document
        return status

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self._call(self._nc.close(), 10)
        self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def __repr__(self) -> str:
        return f"FeederHandle(instance={self.instance!r}, nats, closed={self._closed})"


class AsyncRemoteFeederHandle(AsyncFeederHandle):
    """AsyncFeederHandle over NATS; made by `await AsyncFeederHandle.connect(nats=...)`."""

    def __init__(self, instance: str, nc: Any):
        self.instance, self._nc = instance, nc
        self._subject = Subjects(instance).orders

    @classmethod
    async def open(
        cls, nats: str | NatsConfig, instance: str | None, connect_timeout: float
    ) -> AsyncRemoteFeederHandle:
        name = instance_name(instance)
        return cls(name, await _reach(_config(nats).named(f"feeder-handle-{name}"), connect_timeout))

    async def rpc(
        self, method: str, params: dict[str, Any] | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> Any:
        return await request(self._nc, self._subject, method, dict(params or {}), timeout)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._nc.close()
