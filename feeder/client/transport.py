"""The WebSocket link the client runs on, and the choice of engine behind it.

Two engines keep the same `Link` interface:
- `websockets` (link_websockets.py, always there): websockets' Sans-I/O ClientProtocol driven from our
  own asyncio.Protocol;
- `picows` (link_picows.py, the optional extra `feeder[picows]`): frames parsed in Cython; several
  times cheaper per message (scripts/bench_client.py).
`ClientConfig.transport` picks one: "auto" (the default) takes picows when it is installed.

What every link does: each complete message goes to `on_message(data, recv_ns)` from inside the read
callback (no queue, no task switch), whole (fragments reassembled) and in order, with recv_ns read
once per read from the socket; pings are answered, pongs go to `on_pong(payload)`; a message over
`max_frame_size` fails the connection with close code 1009; `on_lost(error)` is called exactly once
when an opened connection's TCP connection is gone, with websockets' ConnectionClosed (its close
codes say why) whichever engine ran. Opening raises websockets' InvalidHandshake family
(InvalidStatus for an HTTP answer other than 101), OSError, ssl errors or TimeoutError.
"""

from __future__ import annotations

import asyncio
import fcntl
import importlib.util
import struct
import termios
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from feeder.client.config import ClientConfig

OnMessage = Callable[[bytes | bytearray, int], None]
OnPong = Callable[[bytes], None]
OnLost = Callable[[BaseException], None]

ENGINES = ("auto", "websockets", "picows")
_INT = struct.Struct("i")


class LinkEnd:
    """What both engines' links share: write flow control (`drain`, paused by the transport) and the one
    report of the connection's loss (`attach`, `wait_closed`)."""

    def __init__(self) -> None:
        super().__init__()  # the engine's own base (picows' WSListener) comes next in the MRO
        self._on_lost: OnLost | None = None  # set once the handshake succeeded
        self._lost: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()
        self._drain: asyncio.Future[None] | None = None

    async def drain(self) -> None:
        """Wait while the transport's write buffer is above its high-water mark."""
        if self._drain is not None:
            await asyncio.shield(self._drain)

    async def wait_closed(self) -> None:
        """Until the TCP connection is gone."""
        await asyncio.shield(self._lost)

    def attach(self, on_lost: OnLost) -> None:
        """The handshake succeeded: report the loss from now on (at once if it already happened)."""
        self._on_lost = on_lost
        if self._lost.done():
            asyncio.get_running_loop().call_soon(on_lost, self._lost.result())

    def pause_writing(self) -> None:
        self._drain = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        drain, self._drain = self._drain, None
        if drain is not None and not drain.done():
            drain.set_result(None)

    def _gone(self, error: BaseException) -> None:
        """The TCP connection is gone: writers waiting to drain go on, and the loss is reported once."""
        self.resume_writing()
        if not self._lost.done():
            self._lost.set_result(error)
        if self._on_lost is not None:
            self._on_lost(error)


class Link(Protocol):
    last_rx_ns: int  # wall clock of the last read from the socket that carried a frame

    @property
    def is_open(self) -> bool: ...

    def send_text(self, data: bytes) -> None: ...

    def send_binary(self, data: bytes) -> None: ...

    def ping(self, payload: bytes) -> None: ...

    async def drain(self) -> None:
        """Wait while the write buffer is above its high-water mark."""

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake; abort the TCP connection if still open after close_timeout."""

    def abort(self) -> None: ...

    async def wait_closed(self) -> None: ...

    def unread_bytes(self) -> int:
        """Bytes the kernel holds for the socket that nobody has read yet."""


def picows_installed() -> bool:
    return importlib.util.find_spec("picows") is not None


def engine(choice: str) -> str:
    """The engine `choice` ("auto", "websockets" or "picows") stands for on this installation."""
    if choice == "auto":
        return "picows" if picows_installed() else "websockets"
    return choice


async def open_link(config: ClientConfig, on_message: OnMessage, on_pong: OnPong, on_lost: OnLost) -> Link:
    """TCP (and TLS for wss://) and the opening handshake, all within `connect_timeout`."""
    if engine(config.transport) == "picows":
        from feeder.client.link_picows import open_picows

        return await open_picows(config, on_message, on_pong, on_lost)
    from feeder.client.link_websockets import open_websocket

    return await open_websocket(config, on_message, on_pong, on_lost)


def unread_bytes(transport: asyncio.BaseTransport | None) -> int:
    """Bytes waiting unread in the kernel for `transport`'s socket (0 if unknown)."""
    sock = None if transport is None else transport.get_extra_info("socket")
    if sock is None:
        return 0
    try:
        unread: int = _INT.unpack(fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]
        return unread
    except OSError:
        return 0
