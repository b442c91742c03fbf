"""The connection client: the public API over the lifecycle runner (runner.py) and the pure core.

It owns one WebSocket at a time and keeps it alive: heartbeats and active liveness, reconnection with
backoff, JSON-RPC request correlation, rate limiting, subscription restore, latency stats, recording.
Every decision is made by a pure object (the lifecycle table, backoff, heartbeat monitor, limiter,
correlator, subscription set); runner.py carries out the lifecycle, receive.py the receive path, this
module the requests and subscriptions.

Rules it keeps:
- receive path: one orjson.loads per message, `on_notification(msg, recv_ns)` with recv_ns read when
  the bytes arrived, bad input counted and never fatal (receive.py).
- after every (re)connect, in this order: heartbeat setup request, `hooks.on_connected(setup)`,
  subscription restore; only then is the state `connected` and do other requests flow. The hook's and
  the restore's requests go out at once through `Setup.request`, bound to that one connection.
- one subscribe path serves `subscribe()` and the restore.
- requests never outlive their timeout; when the connection drops, every pending one fails at once with
  ConnectionLost(sent=...); nothing is retried here (orders are at most once).
- the venue is never named: method names come from Hooks and the heartbeat table.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from feeder.client.config import ClientConfig
from feeder.client.hooks import Event, Hooks
from feeder.client.receive import Inbox, NotificationHandler
from feeder.client.recorder import Recorder
from feeder.client.requests import Requests, make_limiter
from feeder.client.runner import Runner
from feeder.client.setup import Setup
from feeder.client.transport import Link
from feeder.core import failure
from feeder.core.heartbeat import KINDS, HeartbeatMonitor
from feeder.core.recording import redact_url
from feeder.core.state import ConnState
from feeder.core.subscriptions import SubscribeResult, Subscriptions, group_by_method, split_result
from feeder.core.throttle import LogThrottle
from feeder.errors import ClientClosed, ConnectionLost, ExchangeError, UsageError

logger = logging.getLogger("feeder.client")

EventHandler = Callable[[Event], None]
Groups = list[tuple[str, list[str]]]
_SHUT = (ConnState.IDLE, ConnState.CLOSING, ConnState.CLOSED)
SLOW_DOWN_LOG_PERIOD = 10.0  # seconds between two "slow down" lines for one error code (all counted)


class Client:
    """One WebSocket connection to an exchange, kept alive; use it from one event loop (uvloop).

    client = Client(ClientConfig(url=...), on_notification=fn, on_event=fn, hooks=Hooks(...))
    await client.connect()
    result = await client.request("public/get_time")
    confirmed, refused = await client.subscribe(["book.BTC-PERPETUAL.100ms"])
    await client.close()
    """

    def __init__(
        self,
        config: ClientConfig,
        on_notification: NotificationHandler | None = None,
        on_event: EventHandler | None = None,
        hooks: Hooks | None = None,
    ):
        if not isinstance(config, ClientConfig):
            raise UsageError(f"Client needs a ClientConfig, got {type(config).__name__}")
        self.config = config
        self.hooks = hooks or Hooks()
        self._on_event = on_event
        self._debug = config.debug or logger.isEnabledFor(logging.DEBUG)
        kind = KINDS[config.heartbeat]
        self._hb = HeartbeatMonitor(
            kind,
            config.heartbeat_interval,
            config.max_missed_heartbeats,
            time.time(),
            config.liveness_interval,
            config.liveness_timeout,
        )
        self._subs = Subscriptions()
        limiter = make_limiter(config.rate_limit, kind.answers.values())
        self._requests = Requests(limiter, config.latency_window, self._pressure_changed, self._slowed_down)
        self._slow_log = LogThrottle(SLOW_DOWN_LOG_PERIOD)
        self._inbox = Inbox(
            self._requests, on_notification, kind.server_method, self._on_heartbeat, self._emit, config.url
        )
        self._run = Runner(self, self._requests, self._subs, self._inbox, self._hb, self._restore, self._emit)
        self._frames_out = self._bytes_out = 0
        self._url = redact_url(config.url)  # metrics() is read ten times a second by a worker's heartbeat

    # --- public API ------------------------------------------------------------------------------

    @property
    def state(self) -> ConnState:
        return self._run.life.state

    @property
    def subscriptions(self) -> list[str]:
        """Channels wanted (confirmed at least once and not unsubscribed), in subscription order."""
        return list(self._subs.wanted)

    async def connect(self) -> None:
        """Connect, set up and return when `connected`; retries with backoff; ConnectFailed on giving up."""
        if self.state is ConnState.CONNECTED:
            return
        if self.state not in (ConnState.IDLE, ConnState.CLOSED):
            raise UsageError(
                f"connect() while {self.state.value}; await the running connect or close() first"
            )
        if self.config.record_to is not None and self._inbox.recorder is None:
            self._inbox.recorder = Recorder(self.config.record_to, self.config.url)
        try:
            await asyncio.shield(self._run.start())
        except asyncio.CancelledError:
            await self._run.shut_down(ClientClosed("connect() was cancelled"), self.config.close_timeout)
            raise

    async def reconnect(self) -> None:
        """Replace the connection now (no backoff wait) and return when connected again."""
        if self.state in (ConnState.IDLE, ConnState.CLOSED):
            await self.connect()
            return
        self._run.replace_now()
        deadline = time.monotonic() + self.config.connect_timeout + self.config.max_backoff
        await self._wait_ready("reconnect", deadline)

    async def close(self, timeout: float | None = None) -> None:
        """Wait for pending answers, close the WebSocket gracefully, stop; all within `timeout` seconds."""
        if self.state in (ConnState.CLOSING, ConnState.CLOSED):
            return
        timeout = self.config.close_timeout if timeout is None else timeout
        await self._run.shut_down(ClientClosed("the client was closed"), timeout)

    async def request(self, method: str, params: Any = None, timeout: float | None = None) -> Any:
        """Send a JSON-RPC request and return its result; ExchangeError, RequestTimeout, ConnectionLost,
        RateLimited (not sent: limiter queue full or waited past the timeout) or ClientClosed."""
        if self.state in _SHUT:
            raise ClientClosed(f"{method}: the client is {self.state.value}; call connect() first")
        timeout = self.config.request_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        if not self._run.ready.is_set():
            await self._wait_ready(method, deadline)
        if self._requests.limiter is not None:
            await self._requests.admit(method, deadline)
            if not self._run.ready.is_set():  # the connection was replaced while it queued
                await self._wait_ready(method, deadline)
        return await self._call(self._run.link, method, params, deadline, timeout)

    async def subscribe(self, channels: Iterable[str]) -> SubscribeResult:
        """Subscribe; returns (confirmed, refused {channel: reason}). Refused ones are also reported as a
        `subscription_refused` event. An exchange error refuses the whole chunk it was sent in."""
        return await self._subscribe(self._groups(channels, "subscribe"), self.request)

    async def unsubscribe(self, channels: Iterable[str]) -> list[str]:
        """Unsubscribe; the channels stop being restored whatever the server answers. Returns the
        channels the server said it removed (empty when not connected)."""
        channels = list(dict.fromkeys(channels))
        self._subs.removed(channels)
        if self.state is not ConnState.CONNECTED:
            return []
        removed: list[str] = []
        for method, chunk in self._groups(channels, "unsubscribe"):
            result = await self.request(method, {"channels": chunk})
            removed += [ch for ch in chunk if isinstance(result, list) and ch in result]
        self._emit("unsubscribed", channels=channels)
        return removed

    async def send(self, message: str | bytes) -> None:
        """Send a raw frame (str → text, bytes → binary); not correlated and not rate limited."""
        link = self._run.link
        if link is None or not link.is_open:
            raise ConnectionLost("send", sent=False, reason="not connected")
        if isinstance(message, str):
            await self._send(link, message.encode(), text=True)
        else:
            await self._send(link, message, text=False)

    def latency_stats(self) -> dict[str, float | int]:
        """Request round-trip times in seconds over the last `latency_window` answers."""
        return self._requests.latency.summary()

    def heartbeat_health(self) -> dict[str, Any]:
        return self._hb.health()

    def metrics(self) -> dict[str, Any]:
        run, connected = self._run, self.state is ConnState.CONNECTED
        recorder = self._inbox.recorder
        return {
            "state": self.state.value,
            "url": self._url,
            "frames_in": self._inbox.frames,
            "bytes_in": self._inbox.bytes,
            "frames_out": self._frames_out,
            "bytes_out": self._bytes_out,
            "connects": run.connects,
            "reconnects": run.reconnects,
            "refused_connects": run.refused_connects,
            "uptime_s": time.monotonic() - run.connected_since if connected else 0.0,
            "last_error": None if run.last_error is None else run.last_error[0],
            "last_error_time": None if run.last_error is None else run.last_error[1],
            **self._requests.stats(),
            "bad_input": self._inbox.bad_input,
            "handler_errors": self._inbox.handler_errors,
            "subscriptions": len(self._subs.wanted),
            "refused_subscriptions": self._subs.refused_total,
            "recorder": None
            if recorder is None
            else {"written": recorder.written, "dropped": recorder.dropped},
        }

    # --- requests --------------------------------------------------------------------------------

    async def _wait_ready(self, method: str, deadline: float) -> None:
        ready = self._run.ready
        try:
            await asyncio.wait_for(ready.wait(), max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise ConnectionLost(method, sent=False, reason="not connected before the timeout") from None
        if self.state is not ConnState.CONNECTED:
            raise ConnectionLost(method, sent=False, reason=f"the client is {self.state.value}")

    async def _request_on(self, generation: int, method: str, params: Any, timeout: float | None) -> Any:
        """A request on connection `generation` only, sent at once (Setup.request)."""
        timeout = self.config.request_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        gone = "the connection it was made for is gone"
        run = self._run
        if generation != run.generation or not run.life.live:
            raise ConnectionLost(method, sent=False, reason=gone)
        if self._requests.limiter is not None:
            await self._requests.admit(method, deadline)
            if generation != run.generation or not run.life.live:
                raise ConnectionLost(method, sent=False, reason=gone)
        return await self._call(run.link, method, params, deadline, timeout)

    async def _call(
        self, link: Link | None, method: str, params: Any, deadline: float, timeout: float
    ) -> Any:
        if link is None or not link.is_open:
            raise ConnectionLost(method, sent=False, reason="not connected")

        def send(frame: bytes) -> Awaitable[None]:
            return self._send(link, frame, text=True)

        return await self._requests.call(method, params, deadline, timeout, send)

    async def _send(self, link: Link, frame: bytes, text: bool) -> None:
        if text:
            link.send_text(frame)
        else:
            link.send_binary(frame)
        self._frames_out += 1
        self._bytes_out += len(frame)
        if self._inbox.recorder is not None:
            self._inbox.recorder.record(time.time_ns(), "out", frame.decode() if text else frame)
        await link.drain()

    def _pressure_changed(self, level: str, queued: int) -> None:
        self._emit("pressure", level=level, queued=queued)

    def _slowed_down(self, error: ExchangeError, refill_s: float | None) -> None:
        """The exchange asked us to slow down (Requests.slowed_down already drained the credits)."""
        count = self._requests.rate_limit_events[str(error.code)]
        suppressed = self._slow_log.hit(str(error.code), time.monotonic())
        if suppressed is not None:
            answered = f"answering {error.method}" if error.method else "an answer without a request id"
            drained = "no limiter" if refill_s is None else f"credits drained, full in {refill_s:.2f} s"
            logger.warning(
                "the exchange asks to slow down (%s; %s; %d so far, %d not logged): %s",
                answered,
                drained,
                count,
                suppressed,
                failure.explain(error),
            )
        self._emit(
            "rate_limited",
            code=error.code,
            message=error.message,
            method=error.method,
            refill_s=refill_s,
            count=count,
        )

    # --- subscriptions ---------------------------------------------------------------------------

    async def _restore(self, setup: Setup) -> None:
        """The restore step: subscribe again to every wanted channel the connection lost."""
        groups = self._subs.to_restore(
            self.hooks.method_for("subscribe"), self.hooks.max_channels_per_request
        )
        await self._subscribe(groups, setup.request)

    def _groups(self, channels: Iterable[str], action: str) -> Groups:
        return group_by_method(channels, self.hooks.method_for(action), self.hooks.max_channels_per_request)

    async def _subscribe(self, groups: Groups, request: Callable[..., Awaitable[Any]]) -> SubscribeResult:
        """The one subscribe path (subscribe() and the restore): send each group, record the answers."""
        confirmed: list[str] = []
        refused: dict[str, str] = {}
        for method, chunk in groups:
            try:
                result = split_result(chunk, await request(method, {"channels": chunk}))
            except ExchangeError as e:
                result = SubscribeResult([], dict.fromkeys(chunk, str(e)))
            self._subs.confirmed(result)
            confirmed += result.confirmed
            refused.update(result.refused)
        if confirmed:
            self._emit("subscribed", channels=confirmed)
        if refused:
            logger.warning("subscriptions refused: %s", refused)
            self._emit("subscription_refused", refused=refused)
        return SubscribeResult(confirmed, refused)

    # --- heartbeats ------------------------------------------------------------------------------

    def _on_heartbeat(self, msg: dict[str, Any]) -> None:
        now = time.time()
        reply = self._hb.on_server_heartbeat(msg.get("params"), now)
        if reply is not None and self._run.link is not None:
            self._run.spawn(self._answer_heartbeat(reply, now))

    async def _answer_heartbeat(self, method: str, received: float) -> None:
        self._hb.answer_sent(time.time())
        await self._request_now(method, received)

    def _ask_liveness(self, method: str) -> None:
        """The liveness rule asks the exchange's application whether it is there (watchdog)."""
        if self._run.link is not None:
            self._run.spawn(self._request_now(method, time.time()))

    async def _request_now(self, method: str, since: float) -> None:
        """Send at once: bypasses the limiter queue (but spends its credits) and the ready gate; the
        answer gives the round-trip time from `since`. A failure is the liveness rule's to judge."""
        self._requests.spend_now(method)
        try:
            timeout = self.config.request_timeout
            await self._call(self._run.link, method, None, time.monotonic() + timeout, timeout)
            self._hb.answer_acknowledged(since, time.time())
        except Exception as e:
            if self._debug:
                logger.debug("%s failed: %r", method, e)

    def _emit(self, name: str, **data: Any) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(Event(name, time.time_ns(), data))
        except Exception:
            logger.exception("on_event handler raised for %s", name)
