"""The link on websockets: its Sans-I/O `ClientProtocol` driven from our own asyncio.Protocol.

The event loop calls `data_received`; the bytes go into `ClientProtocol.receive_data`, and every
complete message found in them goes to `on_message(data, recv_ns)` right there: no queue, no task
switch, no websockets driver in between. `recv_ns` is read once per read from the socket, before
parsing, so it is the time the bytes arrived. What the protocol wants written (pongs, close frames)
is written after each read.

Rules it keeps:
- messages are delivered whole and in order: a fragmented message is reassembled here (websockets
  limits its total size to `max_frame_size`); text and binary alike, as bytes, never decoded here;
- pings are answered by the protocol; pongs go to `on_pong(payload)`;
- a message over `max_frame_size` (or any protocol violation) fails the connection with the close
  code websockets chose (1009 for size) and closes the TCP connection at once; `on_lost` then gets
  websockets' ConnectionClosed (its close codes say why);
- `close()` runs the closing handshake and aborts the TCP connection if the server has not closed it
  within `close_timeout`; `abort()` drops it at once;
- writes respect flow control: `drain()` waits while the kernel buffer is over the high-water mark;
- `on_lost(error)` is called exactly once, when the TCP connection is gone.
The interface every link keeps is in transport.py.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import Protocol

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidHandshake
from websockets.frames import Frame, Opcode
from websockets.http11 import USER_AGENT, Request, Response
from websockets.protocol import State
from websockets.uri import parse_uri

from feeder.client.config import ClientConfig
from feeder.client.transport import LinkEnd, OnLost, OnMessage, OnPong, unread_bytes

_TEXT, _BINARY, _CONT, _PONG = Opcode.TEXT, Opcode.BINARY, Opcode.CONT, Opcode.PONG
_OPEN = State.OPEN
_time_ns = time.time_ns


class _Received(Protocol):
    """A frame as the client protocol parsed it from the socket: its payload is bytes or a bytearray,
    never a memoryview (websockets types `Frame.data` as any bytes-like, for the frames one sends)."""

    @property
    def opcode(self) -> Opcode: ...
    @property
    def fin(self) -> bool: ...
    @property
    def data(self) -> bytes | bytearray: ...


class WebsocketsLink(LinkEnd, asyncio.Protocol):
    """One client WebSocket connection; build it with `open_websocket`."""

    def __init__(self, ws: ClientProtocol, on_message: OnMessage, on_pong: OnPong, close_timeout: float):
        super().__init__()
        loop = asyncio.get_running_loop()
        self._ws = ws
        self._on_message = on_message
        self._on_pong = on_pong
        self._close_timeout = close_timeout
        self._transport: asyncio.Transport | None = None
        self._parts: list[bytes | bytearray] = []
        # done when the handshake succeeded, failed or died
        self._handshake: asyncio.Future[None] = loop.create_future()
        self._close_timer: asyncio.TimerHandle | None = None
        self._open = False  # the handshake response was processed: events are frames
        self.last_rx_ns = 0  # wall clock of the last read from the socket (any bytes)

    # --- sending ---------------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._ws.state is _OPEN and self._transport is not None

    def send_text(self, data: bytes) -> None:
        """Queue one text frame (UTF-8 bytes); websockets' InvalidState unless open."""
        self._ws.send_text(data)
        self._flush()

    def send_binary(self, data: bytes) -> None:
        self._ws.send_binary(data)
        self._flush()

    def ping(self, payload: bytes) -> None:
        self._ws.send_ping(payload)
        self._flush()

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake; the TCP connection is aborted if still open after close_timeout."""
        if self._ws.state is _OPEN:
            self._ws.send_close(code, reason)
            self._flush()
        self._expect_close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def unread_bytes(self) -> int:
        return unread_bytes(self._transport)

    def _flush(self) -> None:
        transport = self._transport
        if transport is None:
            return
        for data in self._ws.data_to_send():
            if data:
                transport.write(data)
            elif transport.can_write_eof():
                transport.write_eof()
            else:
                transport.close()

    def _expect_close(self) -> None:
        if self._close_timer is None and self._transport is not None:
            self._close_timer = asyncio.get_running_loop().call_later(self._close_timeout, self.abort)

    # --- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # a stream transport (uvloop's is no subclass)

    def data_received(self, data: bytes) -> None:
        recv_ns = self.last_rx_ns = _time_ns()
        ws = self._ws
        ws.receive_data(data)
        events = ws.events_received()
        self._flush()
        if self._open:
            on_message = self._on_message
            frames: list[_Received] = events  # type: ignore[assignment]  # once open, only frames come
            for frame in frames:
                opcode = frame.opcode
                if (opcode is _TEXT or opcode is _BINARY) and frame.fin and not self._parts:
                    on_message(frame.data, recv_ns)
                else:
                    self._frame(frame, recv_ns)
        else:
            self._opening(events, recv_ns)
        if ws.parser_exc is not None:
            # we failed the connection (1009, 1002...): close TCP once flushed
            if self._transport is not None:
                self._transport.close()
        elif ws.close_expected():
            self._expect_close()

    def _opening(self, events: list[Request | Response | Frame], recv_ns: int) -> None:
        received: list[Response | _Received] = events  # type: ignore[assignment]  # a client gets no Request
        for event in received:
            if isinstance(event, Response):
                self._open = self._ws.handshake_exc is None
                if not self._handshake.done():
                    self._handshake.set_result(None)
            else:
                self._frame(event, recv_ns)

    def _frame(self, frame: _Received, recv_ns: int) -> None:
        opcode = frame.opcode
        if opcode is _TEXT or opcode is _BINARY:
            if frame.fin:
                self._on_message(frame.data, recv_ns)
            else:
                self._parts.append(frame.data)
        elif opcode is _CONT:
            self._parts.append(frame.data)
            if frame.fin:
                parts, self._parts = self._parts, []
                self._on_message(b"".join(parts), recv_ns)
        elif opcode is _PONG:
            self._on_pong(bytes(frame.data))

    def eof_received(self) -> None:
        self._ws.receive_eof()
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self._ws.receive_eof()
        self._transport = None
        if self._close_timer is not None:
            self._close_timer.cancel()
        if not self._handshake.done():
            self._handshake.set_result(None)
        error: BaseException = self._ws.close_exc
        if exc is not None and error.__cause__ is None:
            error.__cause__ = exc
        self._gone(error)


async def open_websocket(
    config: ClientConfig, on_message: OnMessage, on_pong: OnPong, on_lost: OnLost
) -> WebsocketsLink:
    """TCP (and TLS for wss://) and the opening handshake, all within `connect_timeout`. Raises
    websockets' InvalidHandshake family (InvalidStatus carries the HTTP answer), OSError, ssl errors
    or TimeoutError. `on_lost` is called only for a connection that opened."""
    uri = parse_uri(config.url)
    protocol = ClientProtocol(uri, max_size=config.max_frame_size)
    tls = ssl.create_default_context() if uri.secure else None
    websocket: WebsocketsLink | None = None

    def make() -> WebsocketsLink:
        nonlocal websocket
        websocket = WebsocketsLink(protocol, on_message, on_pong, config.close_timeout)
        return websocket

    try:
        async with asyncio.timeout(config.connect_timeout):
            await asyncio.get_running_loop().create_connection(
                make, uri.host, uri.port, ssl=tls, server_hostname=uri.host if tls else None
            )
            assert websocket is not None
            request = protocol.connect()
            request.headers.update(dict(config.headers))
            request.headers.setdefault("User-Agent", USER_AGENT)
            protocol.send_request(request)
            websocket._flush()
            await asyncio.shield(websocket._handshake)
        if protocol.handshake_exc is not None:
            raise protocol.handshake_exc
        if not websocket._open:
            raise InvalidHandshake("the server closed the connection during the opening handshake")
    except BaseException as e:
        if websocket is not None:
            websocket.abort()
        if isinstance(e, TimeoutError):
            raise TimeoutError(
                f"connect and opening handshake not done within connect_timeout ({config.connect_timeout:g} s)"
            ) from None
        raise
    websocket.attach(on_lost)
    return websocket
