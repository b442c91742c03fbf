"""FeederHandle: a strategy's line to the running supervisor (orders, status), sync and async.

It connects to the instance's Unix socket and proves it can read the instance's 0600 key file (see
wire.py). Requests are multiplexed by id, so many threads can share one handle; a handle belongs to the
process that made it (after fork, make a new one). Rules it keeps:
- A new order (`private/buy`, `private/sell`) sent without a label gets a generated one (`fh-` + 16 hex
  digits, `feeder.exchanges.deribit.labels`) before it leaves: the exchange echoes it in
  `result["order"]["label"]`, and every OutcomeUnknown carries it.
- An order whose outcome is not known raises OutcomeUnknown with its label, whatever the timeouts:
  the supervisor always answers within the request's timeout plus a margin derived from its real
  hang_timeout, which it tells the handle in the handshake; the handle waits that long plus transit,
  and if even that passes (a supervisor stopped or overloaded), an order is OutcomeUnknown too (a
  read-only request is RequestTimeout). If the supervisor goes away while an order is in flight, the
  caller gets OutcomeUnknown with the order's label, never a silent loss.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
import threading
from concurrent.futures import Future
from typing import Any

from feeder import errors
from feeder.exchanges.deribit.labels import with_label
from feeder.exchanges.methods import is_read_only
from feeder.runtime import wire
from feeder.runtime.rundir import RunDir

DEFAULT_TIMEOUT = 10.0
STATUS_METHOD = "feeder/status"
BOOK_METHOD = "feeder/book"  # answered by the worker that keeps the book, from its memory
DEFAULT_MARGIN_S = 6.0  # a supervisor that does not say its answer margin: the default hang_timeout + 1 s
TRANSIT_S = 2.0  # socket and scheduling delays between the supervisor's answer and this handle
ENV_NATS = "FEEDER_HANDLE_NATS"  # handles reach a feeder on another host over NATS (feeder.bridge.remote)


def _not_running(instance: str, why: str) -> errors.FeederNotRunning:
    return errors.FeederNotRunning(
        f"no feeder running for instance {instance!r} ({why}); start one with "
        f"`python -m feeder --instance {instance}` (or `--sim` for the local exchange)"
    )


def _read_key(rd: RunDir) -> str:
    try:
        return rd.key_path.read_text().strip()
    except FileNotFoundError:
        raise _not_running(rd.instance, f"no key file {rd.key_path}") from None
    except PermissionError:
        raise errors.UsageError(
            f"cannot read {rd.key_path}: only the user running the feeder may connect"
        ) from None


def _lost(method: str, params: dict, why: str) -> errors.FeederError:
    if is_read_only(method):
        return errors.ConnectionLost(method, sent=True, reason=why)
    return errors.OutcomeUnknown(method, params.get("label"), why)


def _unanswered(method: str, params: dict, timeout: float, waited: float) -> errors.FeederError:
    if is_read_only(method):
        return errors.RequestTimeout(method, timeout)
    return errors.OutcomeUnknown(
        method, params.get("label"), f"no answer from the supervisor in {waited:g} s"
    )


def _request(method: str, params: dict | None) -> dict:
    """The params to send: a copy, with a generated label for a new order that has none."""
    return with_label(method, dict(params or {}))[0]


def _handshake_reply(message: dict, instance: str) -> float:
    """The supervisor's answer margin (seconds beyond a request's timeout) from its handshake reply."""
    if not message.get("ok"):
        raise errors.UsageError(
            f"feeder instance {instance!r} refused this handle: {message.get('error', 'no reason')}"
        )
    margin = message.get("answer_margin_s", DEFAULT_MARGIN_S)
    return float(margin) if isinstance(margin, int | float) and margin >= 0 else DEFAULT_MARGIN_S


class FeederHandle:
    """Synchronous, thread-safe handle on a running feeder instance."""

    def __new__(cls, *args: Any, nats: Any = None, **kwargs: Any) -> FeederHandle:
        # nats=URL or NatsConfig (else $FEEDER_HANDLE_NATS): a feeder on another host, through its
        # `feeder mirror --orders`; nats="" is this host whatever the environment says
        if (os.environ.get(ENV_NATS) if nats is None else nats) and cls is FeederHandle:
            from feeder.bridge.remote import RemoteFeederHandle

            return super().__new__(RemoteFeederHandle)
        return super().__new__(cls)

    def __init__(self, instance: str | None = None, connect_timeout: float = 5.0, nats: Any = None):
        rd = RunDir(instance)
        self.instance = rd.instance
        self._pid = os.getpid()
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[Future, str, dict]] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._sock = self._connect(rd, connect_timeout)
        self._reader = threading.Thread(
            target=self._read_loop, name=f"feeder-handle-{self.instance}", daemon=True
        )
        self._reader.start()

    def _connect(self, rd: RunDir, timeout: float) -> socket.socket:
        key = _read_key(rd)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(str(rd.socket_path))
            decoder = wire.FrameDecoder()
            nonce = self._recv_one(sock, decoder)["nonce"]
            sock.sendall(wire.encode({"proof": wire.prove(key, nonce)}))
            self._margin = _handshake_reply(self._recv_one(sock, decoder), self.instance)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            sock.close()
            raise _not_running(self.instance, f"{rd.socket_path}: {exc.strerror}") from None
        except BaseException:
            sock.close()
            raise
        sock.settimeout(None)
        self._decoder = decoder
        return sock

    @staticmethod
    def _recv_one(sock: socket.socket, decoder: wire.FrameDecoder) -> dict:
        while True:
            data = sock.recv(65536)
            if not data:
                raise wire.WireError("the supervisor closed the control connection during the handshake")
            frames = decoder.feed(data)
            if frames:
                return frames[0]

    def rpc(self, method: str, params: dict | None = None, timeout: float = DEFAULT_TIMEOUT) -> Any:
        """Send an exchange request through the healthiest worker; returns the result or raises."""
        if os.getpid() != self._pid:
            raise errors.UsageError("this FeederHandle was created in another process; create one after fork")
        params = _request(method, params)
        future: Future = Future()
        with self._lock:
            if self._closed:
                raise _not_running(self.instance, "the handle is closed")
            rid = next(self._ids)
            self._pending[rid] = (future, method, params)
            self._sock.sendall(
                wire.encode({"id": rid, "method": method, "params": params, "timeout": timeout})
            )
        wait = timeout + self._margin + TRANSIT_S
        try:
            return future.result(wait)
        except TimeoutError:
            raise _unanswered(method, params, timeout, wait) from None
        finally:
            with self._lock:
                self._pending.pop(rid, None)

    def status(self) -> dict:
        """Workers, health scores and rings, as the supervisor sees them."""
        return self.rpc(STATUS_METHOD)

    def book(self, instrument: str, depth: int | None = None, timeout: float = DEFAULT_TIMEOUT) -> dict:
        """The whole current book of `instrument` (or an alias, `BTC`) as its worker keeps it, every
        level or the best `depth` per side, with its change_id and state (see the README)."""
        return self.rpc(BOOK_METHOD, {"instrument": instrument, "depth": depth}, timeout)

    def _read_loop(self) -> None:
        why = "the supervisor closed the connection"
        try:
            while True:
                data = self._sock.recv(1 << 20)
                if not data:
                    break
                for message in self._decoder.feed(data):
                    self._deliver(message)
        except (OSError, wire.WireError) as exc:
            why = f"control connection failed: {exc}"
        with self._lock:
            self._closed = True
            pending = list(self._pending.values())
        for future, method, params in pending:
            if not future.done():
                future.set_exception(_lost(method, params, why))

    def _deliver(self, message: dict) -> None:
        with self._lock:
            entry = self._pending.get(message.get("id"))
        if entry is None or entry[0].done():
            return
        if "error" in message:
            entry[0].set_exception(wire.error_from_wire(message["error"]))
        else:
            entry[0].set_result(message.get("result"))

    def close(self) -> None:
        with self._lock:
            self._closed = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        if threading.current_thread() is not self._reader:
            self._reader.join(timeout=5)

    def __enter__(self) -> FeederHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FeederHandle(instance={self.instance!r}, closed={self._closed})"


class AsyncFeederHandle:
    """The same handle for asyncio strategies: `h = await AsyncFeederHandle.connect()`."""

    def __init__(
        self, instance: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, margin: float
    ):
        self.instance = instance
        self._margin = margin
        self._reader, self._writer = reader, writer
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[asyncio.Future, str, dict]] = {}
        self._task = asyncio.get_running_loop().create_task(self._read_loop())

    @classmethod
    async def connect(
        cls, instance: str | None = None, connect_timeout: float = 5.0, nats: Any = None
    ) -> AsyncFeederHandle:
        nats = os.environ.get(ENV_NATS) if nats is None else nats
        if nats:  # a feeder on another host, through its `feeder mirror --orders`
            from feeder.bridge.remote import AsyncRemoteFeederHandle

            return await AsyncRemoteFeederHandle.open(nats, instance, connect_timeout)
        rd = RunDir(instance)
        key = _read_key(rd)
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(str(rd.socket_path)), connect_timeout
            )
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise _not_running(rd.instance, f"{rd.socket_path}: {exc.strerror}") from None
        try:
            nonce = (await asyncio.wait_for(wire.read_frame(reader), connect_timeout))["nonce"]
            writer.write(wire.encode({"proof": wire.prove(key, nonce)}))
            reply = await asyncio.wait_for(wire.read_frame(reader), connect_timeout)
            margin = _handshake_reply(reply, rd.instance)
        except BaseException:
            writer.close()
            raise
        return cls(rd.instance, reader, writer, margin)

    async def rpc(self, method: str, params: dict | None = None, timeout: float = DEFAULT_TIMEOUT) -> Any:
        params = _request(method, params)
        if self._task.done():
            raise _not_running(self.instance, "the control connection is closed")
        rid = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._pending[rid] = (future, method, params)
        try:
            self._writer.write(
                wire.encode({"id": rid, "method": method, "params": params, "timeout": timeout})
            )
            wait = timeout + self._margin + TRANSIT_S
            return await asyncio.wait_for(future, wait)
        except TimeoutError:
            raise _unanswered(method, params, timeout, wait) from None
        finally:
            self._pending.pop(rid, None)

    async def status(self) -> dict:
        return await self.rpc(STATUS_METHOD)

    async def book(self, instrument: str, depth: int | None = None, timeout: float = DEFAULT_TIMEOUT) -> dict:
        """As FeederHandle.book."""
        return await self.rpc(BOOK_METHOD, {"instrument": instrument, "depth": depth}, timeout)

    async def _read_loop(self) -> None:
        why = "the supervisor closed the connection"
        try:
            while True:
                message = await wire.read_frame(self._reader)
                entry = self._pending.get(message.get("id"))
                if entry is None or entry[0].done():
                    continue
                if "error" in message:
                    entry[0].set_exception(wire.error_from_wire(message["error"]))
                else:
                    entry[0].set_result(message.get("result"))
        except (asyncio.IncompleteReadError, OSError, wire.WireError) as exc:
            if not isinstance(exc, asyncio.IncompleteReadError):
                why = f"control connection failed: {exc}"
        for future, method, params in list(self._pending.values()):
            if not future.done():
                future.set_exception(_lost(method, params, why))

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def __aenter__(self) -> AsyncFeederHandle:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
