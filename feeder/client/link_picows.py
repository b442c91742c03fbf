"""The link on picows (optional extra `feeder[picows]`): the same Link, with frames parsed in Cython.

picows calls `on_ws_frame` for every frame of a read, inside its protocol's read callback; the
message goes to `on_message` right there. `recv_ns` is read at the first frame of each read (picows
flags the last frame of a buffer), so all messages of one read share the time the bytes arrived.
Rules it keeps, as the websockets link does:
- fragmented messages are reassembled here, their total size held to `max_frame_size` (picows itself
  limits each frame); over it, the connection is closed with 1009;
- pings are answered by picows; pongs go to `on_pong`; a close from the server is echoed, then the TCP
  connection is closed;
- `on_lost` gets websockets' ConnectionClosed built from the close frames sent and received, and
  handshake failures become websockets' InvalidStatus / InvalidHandshake, so the client classifies
  failures the same way whichever engine runs.
One difference: picows reports bytes only as whole frames, so `last_rx_ns` moves when a frame is
complete (the websockets link moves it on any bytes).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from picows import WSCloseCode, WSFrame, WSHandshakeError, WSListener, WSMsgType, WSTransport, ws_connect
from websockets.datastructures import Headers
from websockets.exceptions import (
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidHandshake,
    InvalidState,
    InvalidStatus,
)
from websockets.frames import OK_CLOSE_CODES, Close
from websockets.http11 import USER_AGENT, Response

from feeder.client.config import ClientConfig
from feeder.client.transport import LinkEnd, OnLost, OnMessage, OnPong, unread_bytes

_TEXT, _BINARY, _CONT = WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION
_PONG, _CLOSE = WSMsgType.PONG, WSMsgType.CLOSE
_time_ns = time.time_ns


class PicowsLink(LinkEnd, WSListener):
    """One client WebSocket connection on picows; build it with `open_picows`."""

    def __init__(self, on_message: OnMessage, on_pong: OnPong, max_size: int, close_timeout: float):
        super().__init__()
        self._on_message = on_message
        self._on_pong = on_pong
        self._max_size = max_size
        self._close_timeout = close_timeout
        self._ws: WSTransport | None = None
        self._parts: list[bytes] = []
        self._size = 0
        self._fresh = True  # the next frame starts a new read
        self._recv_ns = 0
        self._close_timer: asyncio.TimerHandle | None = None
        self.last_rx_ns = 0

    # --- sending ---------------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        ws = self._ws
        return ws is not None and not ws.is_disconnected and not ws.is_close_frame_sent

    def send_text(self, data: bytes) -> None:
        self._transport().send(_TEXT, data)

    def send_binary(self, data: bytes) -> None:
        self._transport().send(_BINARY, data)

    def ping(self, payload: bytes) -> None:
        self._transport().send_ping(payload)

    def close(self, code: int = 1000, reason: str = "") -> None:
        ws = self._ws
        if ws is None or ws.is_disconnected:
            return
        if not ws.is_close_frame_sent:
            ws.send_close(WSCloseCode(code), reason.encode())
        if self._close_timer is None:
            self._close_timer = asyncio.get_running_loop().call_later(self._close_timeout, self.abort)

    def abort(self) -> None:
        if self._ws is not None and not self._ws.is_disconnected:
            self._ws.disconnect(graceful=False)

    def unread_bytes(self) -> int:
        return 0 if self._ws is None else unread_bytes(self._ws.underlying_transport)

    def _transport(self) -> WSTransport:
        ws = self._ws
        if ws is None or ws.is_disconnected or ws.is_close_frame_sent:
            raise InvalidState("the connection is not open")
        return ws

    # --- picows callbacks ------------------------------------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        self._ws = transport
        # picows keeps its own errors (a frame over the limit...) for wait_disconnected: take them
        asyncio.ensure_future(transport.wait_disconnected()).add_done_callback(_retrieved)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if self._fresh:
            self._recv_ns = self.last_rx_ns = _time_ns()
        self._fresh = frame.last_in_buffer
        kind = frame.msg_type
        if transport.is_close_frame_sent:
            if kind is _CLOSE:  # the close handshake is done
                transport.disconnect()
            return  # failing or closing (picows may still parse a frame it refused): nothing more is read
        if (kind is _TEXT or kind is _BINARY) and frame.fin and not self._parts:
            self._on_message(frame.get_payload_as_bytes(), self._recv_ns)
        else:
            self._frame(transport, frame, kind)

    def _frame(self, transport: WSTransport, frame: WSFrame, kind: WSMsgType) -> None:
        if kind is _TEXT or kind is _BINARY or kind is _CONT:
            self._parts.append(frame.get_payload_as_bytes())
            self._size += frame.payload_size
            if self._size > self._max_size:
                self._parts, self._size = [], 0
                transport.send_close(WSCloseCode.MESSAGE_TOO_BIG, b"fragmented message over max_frame_size")
                transport.disconnect()
            elif frame.fin:
                parts, self._parts, self._size = self._parts, [], 0
                self._on_message(b"".join(parts), self._recv_ns)
        elif kind is _PONG:
            self._on_pong(frame.get_payload_as_bytes())
        elif kind is _CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if self._close_timer is not None:
            self._close_timer.cancel()
        self._gone(_closed(transport))


def _retrieved(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


def _close(info: object) -> Close | None:
    if info is None:
        return None
    code = getattr(info, "code", 1005)
    return Close(int(getattr(code, "value", code)), str(getattr(info, "reason", "")))


def _closed(transport: WSTransport) -> ConnectionClosedError | ConnectionClosedOK:
    """The close as websockets would report it: the frames received and sent, if any."""
    handshake = transport.close_handshake
    rcvd = sent = None
    if handshake is not None:
        rcvd, sent = _close(handshake.recv), _close(handshake.sent)
    if rcvd is None or sent is None:
        return ConnectionClosedError(rcvd, sent, None)
    ok = rcvd.code in OK_CLOSE_CODES and sent.code in OK_CLOSE_CODES
    return (ConnectionClosedOK if ok else ConnectionClosedError)(rcvd, sent, bool(handshake.recv_then_sent))


def _handshake_error(error: WSHandshakeError) -> InvalidHandshake:
    answer = error.response
    if answer is None or int(answer.status) == 101:
        return InvalidHandshake(str(error))
    headers = Headers((k, v) for k, v in answer.headers.items()) if answer.headers else Headers()
    status = int(answer.status)
    return InvalidStatus(Response(status, answer.status.phrase, headers, answer.body or b""))


async def open_picows(
    config: ClientConfig, on_message: OnMessage, on_pong: OnPong, on_lost: OnLost
) -> PicowsLink:
    """TCP (and TLS for wss://) and the opening handshake on picows, all within `connect_timeout`."""
    link = PicowsLink(on_message, on_pong, config.max_frame_size, config.close_timeout)
    try:
        async with asyncio.timeout(config.connect_timeout):
            await ws_connect(
                lambda: link,
                config.url,
                websocket_handshake_timeout=None,
                enable_auto_pong=True,
                max_frame_size=config.max_frame_size,
                extra_headers={"User-Agent": USER_AGENT, **config.headers},
                max_redirects=0,
            )
    except TimeoutError:
        link.abort()
        raise TimeoutError(
            f"connect and opening handshake not done within connect_timeout ({config.connect_timeout:g} s)"
        ) from None
    except WSHandshakeError as e:
        raise _handshake_error(e) from e
    except BaseException:
        link.abort()
        raise
    link.attach(on_lost)
    return link
