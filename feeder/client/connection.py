"""The connection client: the asyncio shell around the pure lifecycle (feeder.core.state) and friends.

It owns one WebSocket at a time and keeps it alive: heartbeats and silence probes, reconnection with
backoff, JSON-RPC request correlation, rate limiting, subscription restore, latency stats, recording.
Every decision is made by a pure object (the lifecycle table, backoff, heartbeat monitor, limiter,
correlator, subscription set); this module feeds them events and carries out their actions.

Rules it keeps:
- receive path: see receive.py (one orjson.loads per message, `on_notification(msg, recv_ns)` with
  recv_ns read when the bytes arrived, bad input counted and never fatal).
- after every (re)connect, in this order: heartbeat setup request, `hooks.on_connected(setup)`,
  subscription restore; only then is the state `connected` and do other requests flow. The hook's and
  the restore's requests go out at once through `Setup.request`, bound to that one connection.
- one subscribe path serves `subscribe()` and the restore.
- requests never outlive their timeout; when the connection drops, every pending one fails at once with
  ConnectionLost(sent=...); nothing is retried here (orders are at most once).
- a connection that opened and was lost, however, is reported once (`disconnected` and the
  `on_disconnected` hook), so that the adapter can flag its books at once.
- the venue is never named: method names come from Hooks and the heartbeat table.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from websockets.exceptions import ConnectionClosed

from feeder.client.config import ClientConfig
from feeder.client.hooks import Event, Hooks
from feeder.client.liveness import Watchdog
from feeder.client.receive import Inbox, NotificationHandler
from feeder.client.recorder import Recorder
from feeder.client.requests import Requests
from feeder.client.setup import Setup
from feeder.client.sharedbucket import SharedBucket
from feeder.client.transport import WebSocket, open_websocket
from feeder.core import failure
from feeder.core import state as lc
from feeder.core.backoff import Backoff
from feeder.core.heartbeat import KINDS, HeartbeatMonitor, Verdict
from feeder.core.ratelimit import DEFAULT, Bucket, Limiter, TokenBucket, cost_function
from feeder.core.recording import redact_url
from feeder.core.state import ConnState
from feeder.core.subscriptions import SubscribeResult, Subscriptions, group_by_method, split_result
from feeder.errors import ClientClosed, ConnectionLost, ExchangeError, NetworkError, UsageError

logger = logging.getLogger("feeder.client")

EventHandler = Callable[[Event], None]
Groups = list[tuple[str, list[str]]]
_SHUT = (ConnState.IDLE, ConnState.CLOSING, ConnState.CLOSED)


class _LinkDead(NetworkError):
    """The heartbeat watchdog (or the caller) replaced the link."""


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
        backoff = Backoff(
            config.initial_delay,
            config.max_backoff,
            jitter=config.jitter,
            stable_after=config.stable_after,
            max_retries=config.max_retries,
        )
        self._life = lc.Lifecycle(lc.Policy(config.reconnect_on_error), backoff, random.Random())
        kind = KINDS[config.heartbeat]
        self._hb = HeartbeatMonitor(
            kind,
            config.heartbeat_interval,
            config.max_missed_heartbeats,
            time.time(),
            config.probe_after,
            config.probe_timeout,
        )
        self._subs = Subscriptions()
        self._requests = Requests(self._make_limiter(), config.latency_window, self._pressure_changed)
        self._inbox = Inbox(
            self._requests, on_notification, kind.server_method, self._on_heartbeat, self._emit, config.url
        )
        self._link: WebSocket | None = None
        self._generation = 0  # which connection is current (1, 2, ...)
        self._watchdog: Watchdog | None = None
        self._ready = asyncio.Event()
        self._first: asyncio.Future | None = None
        self._step: asyncio.Task | None = None  # opening, setting up or restoring
        self._retry: asyncio.TimerHandle | None = None
        self._events: deque[lc.Event] = deque()
        self._feeding = False
        self._stop_reason: BaseException = ClientClosed("the client was closed")
        self._frames_out = self._bytes_out = 0
        self._connects = self._reconnects = 0
        self._connected_since = 0.0
        self._last_error: tuple[str, float] | None = None
        self._background: set[asyncio.Future] = set()

    def _make_limiter(self) -> Limiter | None:
        rl = self.config.rate_limit
        if rl is None:
            return None
        limits = {DEFAULT: (rl.capacity, rl.refill_per_s), **rl.buckets}
        buckets: dict[str, Bucket] = {}
        for name, (capacity, refill) in limits.items():
            if rl.shared_dir is None:
                buckets[name] = TokenBucket.full(capacity, refill, time.monotonic())
            else:
                file = rl.shared_name if name == DEFAULT else f"{rl.shared_name}.{name}"
                buckets[name] = SharedBucket(rl.shared_dir, file, capacity, refill)
        limiter = Limiter(buckets, cost_function(rl.cost, "rate_limit.cost"), rl.max_queue)
        for method in self._hb.kind.answers.values():  # heartbeat answers must never wait
            name, cost = limiter.charge(method)
            limiter.reserve[name] = max(limiter.reserve.get(name, 0.0), cost)
        return limiter

    # --- public API ------------------------------------------------------------------------------

    @property
    def state(self) -> ConnState:
        return self._life.state

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
        self._first = first = asyncio.get_running_loop().create_future()
        if self.config.record_to is not None and self._inbox.recorder is None:
            self._inbox.recorder = Recorder(self.config.record_to, self.config.url)
        self._feed(lc.Connect())
        try:
            await asyncio.shield(first)
        except asyncio.CancelledError:
            await self._shut_down(ClientClosed("connect() was cancelled"), self.config.close_timeout)
            raise

    async def reconnect(self) -> None:
        """Replace the connection now (no backoff wait) and return when connected again."""
        if self.state in (ConnState.IDLE, ConnState.CLOSED):
            await self.connect()
            return
        self._ready.clear()
        self._feed(lc.Replace(_LinkDead("reconnect() requested"), abort=False, at_once=True))
        deadline = time.monotonic() + self.config.connect_timeout + self.config.max_backoff
        await self._wait_ready("reconnect", deadline)

    async def close(self, timeout: float | None = None) -> None:
        """Wait for pending answers, close the WebSocket gracefully, stop; all within `timeout` seconds."""
        if self.state in (ConnState.CLOSING, ConnState.CLOSED):
            return
        await self._shut_down(ClientClosed("the client was closed"), timeout)

    async def request(self, method: str, params: Any = None, timeout: float | None = None) -> Any:
        """Send a JSON-RPC request and return its result; ExchangeError, RequestTimeout, ConnectionLost,
        RateLimited (not sent: limiter queue full or waited past the timeout) or ClientClosed."""
        if self.state in _SHUT:
            raise ClientClosed(f"{method}: the client is {self.state.value}; call connect() first")
        timeout = self.config.request_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        if not self._ready.is_set():
            await self._wait_ready(method, deadline)
        if self._requests.limiter is not None:
            await self._requests.admit(method, deadline)
            if not self._ready.is_set():  # the connection was replaced while it queued
                await self._wait_ready(method, deadline)
        return await self._call(self._link, method, params, deadline, timeout)

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
        link = self._link
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
        connected = self.state is ConnState.CONNECTED
        recorder = self._inbox.recorder
        return {
            "state": self.state.value,
            "url": redact_url(self.config.url),
            "frames_in": self._inbox.frames,
            "bytes_in": self._inbox.bytes,
            "frames_out": self._frames_out,
            "bytes_out": self._bytes_out,
            "connects": self._connects,
            "reconnects": self._reconnects,
            "uptime_s": time.monotonic() - self._connected_since if connected else 0.0,
            "last_error": None if self._last_error is None else self._last_error[0],
            "last_error_time": None if self._last_error is None else self._last_error[1],
            **self._requests.stats(),
            "bad_input": self._inbox.bad_input,
            "handler_errors": self._inbox.handler_errors,
            "subscriptions": len(self._subs.wanted),
            "refused_subscriptions": self._subs.refused_total,
            "recorder": None
            if recorder is None
            else {"written": recorder.written, "dropped": recorder.dropped},
        }

    # --- the lifecycle: events in, actions out ----------------------------------------------------

    def _feed(self, event: lc.Event) -> None:
        """Hand `event` to the lifecycle and carry out its actions; events raised meanwhile queue up."""
        self._events.append(event)
        if self._feeding:
            return
        self._feeding = True
        try:
            while self._events:
                before = self._life.state
                actions = self._life.handle(self._events.popleft(), time.monotonic())
                if self._life.state is not before:
                    self._emit("state", **{"from": before.value, "to": self._life.state.value})
                for action in actions:
                    getattr(self, f"_do_{type(action).__name__}")(action)
        finally:
            self._feeding = False

    def _start_step(self, coro: Awaitable[None], name: str) -> None:
        self._step = asyncio.ensure_future(coro)
        self._step.set_name(name)

    def _do_OpenSocket(self, _a: lc.OpenSocket) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        self._start_step(self._open(), "feeder-client-open")

    def _do_RunSetup(self, _a: lc.RunSetup) -> None:
        self._start_step(self._setup(self._generation), "feeder-client-setup")

    def _do_Restore(self, _a: lc.Restore) -> None:
        self._start_step(self._restore(self._generation), "feeder-client-restore")

    def _do_GoLive(self, a: lc.GoLive) -> None:
        self._connected_since = time.monotonic()
        self._ready.set()
        self._emit("connected", url=redact_url(self.config.url), attempt=a.attempt)
        if self._first is not None and not self._first.done():
            self._first.set_result(None)

    def _do_DropSocket(self, a: lc.DropSocket) -> None:
        link = self._link
        if link is not None and a.abort:
            link.abort()
        elif link is not None:
            link.close()

    def _do_ConnectionEnded(self, a: lc.ConnectionEnded) -> None:
        """The socket is gone: fail what was pending, reset per-connection state, tell the hook."""
        self._stop_step()
        if self._watchdog is not None:
            self._watchdog.stop()
            self._watchdog = None
        self._link = None
        self._ready.clear()
        text = str(a.reason)
        self._last_error = (str(a.explanation), time.time())
        self._requests.fail_pending(text)
        self._subs.disconnected()
        if a.notify:
            self._emit("disconnected", reason=text, category=a.explanation.category.value)
            self._call_disconnected_hook()

    def _do_DrainCredits(self, _a: lc.DrainCredits) -> None:
        self._feed(lc.CreditsDrained(self._requests.overspent()))

    def _do_WaitToRetry(self, a: lc.WaitToRetry) -> None:
        self._reconnects += 1
        self._emit("reconnecting", delay=a.delay, attempt=a.attempt, reason=str(a.explanation))
        logger.warning("connection lost (%s); reconnecting in %.2f s", a.explanation, a.delay)
        self._retry = asyncio.get_running_loop().call_later(a.delay, self._feed, lc.RetryDue())

    def _do_GiveUp(self, a: lc.GiveUp) -> None:
        self._emit("gave_up", reason=str(a.error), advice=a.error.advice, fatal=a.error.fatal)
        logger.error("%s", a.error)
        self._finish(a.error)

    def _do_Finish(self, _a: lc.Finish) -> None:
        self._finish(self._stop_reason)

    def _finish(self, error: BaseException) -> None:
        """Closed for good: fail every waiter, flush the recording."""
        self._stop_step()
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        self._requests.fail_queued(str(error))
        self._requests.stop()
        if self._first is not None and not self._first.done():
            self._first.set_exception(error)
        self._ready.set()  # wake request() waiters: they will find the client closed
        self._ready = asyncio.Event()
        if self._inbox.recorder is not None:
            self._inbox.recorder.close()
            self._inbox.recorder = None
        self._emit("closed", reason=str(error))

    def _stop_step(self) -> None:
        step, self._step = self._step, None
        if step is not None and step is not asyncio.current_task():
            step.cancel()

    async def _shut_down(self, reason: BaseException, timeout: float | None) -> None:
        timeout = self.config.close_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        self._stop_reason = reason
        self._feed(lc.Close())
        if self.state is ConnState.CLOSED:
            return
        self._stop_step()
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        waiters = self._requests.waiting_for_answers()
        if waiters:
            await asyncio.wait(waiters, timeout=max(0.0, deadline - time.monotonic()))
        link = self._link
        if link is not None:
            link.close()
            try:
                await asyncio.wait_for(link.wait_closed(), max(0.01, deadline - time.monotonic()))
            except TimeoutError:
                link.abort()
                await link.wait_closed()
        self._feed(lc.Closed())

    # --- the steps: open, set up, restore ----------------------------------------------------------

    async def _open(self) -> None:
        try:
            link = await open_websocket(self.config, self._inbox.dispatch, self._on_pong, self._on_lost)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self._step = None
            self._feed(lc.Lost(e))
            return
        self._step = None
        self._link = link
        self._generation += 1
        self._connects += 1
        self._requests.rate_limited = False
        self._inbox.last_message_ns = time.time_ns()
        self._hb.reset(time.time())
        if self._debug:
            logger.debug("connected to %s", redact_url(self.config.url))
        self._watchdog = Watchdog(self._hb, link, self._inbox, self._on_verdict)
        self._watchdog.start()
        self._feed(lc.Opened())

    async def _setup(self, generation: int) -> None:
        setup = Setup(self, generation)
        try:
            first = self._hb.setup_request()
            if first is not None:
                await setup.request(*first)
            if self.hooks.on_connected is not None:
                await self.hooks.on_connected(setup)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self._step_failed(generation, e)
            return
        self._step_done(generation, lc.SetUp())

    async def _restore(self, generation: int) -> None:
        try:
            if self.config.restore_subscriptions and self._subs.wanted:
                groups = self._subs.to_restore(
                    self.hooks.method_for("subscribe"), self.hooks.max_channels_per_request
                )
                await self._subscribe(groups, Setup(self, generation).request)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self._step_failed(generation, e)
            return
        self._step_done(generation, lc.Restored())

    def _step_done(self, generation: int, event: lc.Event) -> None:
        if generation == self._generation and self._life.live:
            self._step = None
            self._feed(event)

    def _step_failed(self, generation: int, error: BaseException) -> None:
        if generation == self._generation and self._life.live:
            self._step = None
            self._feed(lc.Replace(error, abort=True))

    def _on_lost(self, error: BaseException) -> None:
        """The transport's on_lost: the TCP connection of the current link is gone."""
        if isinstance(error, ConnectionClosed) and failure.close_code(error) == failure.MESSAGE_TOO_BIG:
            self._inbox.bad("oversized_frame", str(error))
        self._feed(lc.Lost(error, rate_limited=self._requests.rate_limited))

    def _on_pong(self, payload: bytes) -> None:
        if self._watchdog is not None:
            self._watchdog.pong(payload)

    def _on_verdict(self, verdict: Verdict, reason: str) -> None:
        self._emit("heartbeat_dead", reason=reason, verdict=verdict.value)
        logger.warning("heartbeat: %s; replacing the connection", reason)
        self._feed(lc.Replace(_LinkDead(f"heartbeat: {reason}"), abort=verdict is Verdict.DEAD))

    def _call_disconnected_hook(self) -> None:
        hook = self.hooks.on_disconnected
        if hook is None:
            return
        try:
            result = hook()
            if inspect.isawaitable(result):
                self._spawn(result).add_done_callback(self._hook_done)
        except Exception:
            logger.exception("on_disconnected hook raised")

    @staticmethod
    def _hook_done(task: asyncio.Future) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error("on_disconnected hook raised: %r", task.exception())

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Future:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    # --- requests --------------------------------------------------------------------------------

    async def _wait_ready(self, method: str, deadline: float) -> None:
        ready = self._ready
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
        if generation != self._generation or not self._life.live:
            raise ConnectionLost(method, sent=False, reason=gone)
        if self._requests.limiter is not None:
            await self._requests.admit(method, deadline)
            if generation != self._generation or not self._life.live:
                raise ConnectionLost(method, sent=False, reason=gone)
        return await self._call(self._link, method, params, deadline, timeout)

    async def _call(
        self, link: WebSocket | None, method: str, params: Any, deadline: float, timeout: float
    ) -> Any:
        if link is None or not link.is_open:
            raise ConnectionLost(method, sent=False, reason="not connected")

        def send(frame: bytes) -> Awaitable[None]:
            return self._send(link, frame, text=True)

        return await self._requests.call(method, params, deadline, timeout, send)

    async def _send(self, link: WebSocket, frame: bytes, text: bool) -> None:
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

    # --- subscriptions ---------------------------------------------------------------------------

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

    def _on_heartbeat(self, msg: dict) -> None:
        now = time.time()
        reply = self._hb.on_server_heartbeat(msg.get("params"), now)
        if reply is not None and self._link is not None:
            self._spawn(self._answer_heartbeat(reply, now))

    async def _answer_heartbeat(self, method: str, received: float) -> None:
        """Answer at once: bypasses the limiter queue (but spends its credits) and the ready gate."""
        self._requests.spend_now(method)
        try:
            self._hb.answer_sent(time.time())
            timeout = self.config.request_timeout
            await self._call(self._link, method, None, time.monotonic() + timeout, timeout)
            self._hb.answer_acknowledged(received, time.time())
        except Exception as e:
            if self._debug:
                logger.debug("heartbeat answer %s failed: %r", method, e)

    def _emit(self, name: str, **data: Any) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(Event(name, time.time_ns(), data))
        except Exception:
            logger.exception("on_event handler raised for %s", name)
