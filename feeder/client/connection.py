"""The connection client: the asyncio shell around the pure core (feeder.core), on websockets + uvloop.

It owns one WebSocket at a time and keeps it alive: heartbeats, stall detection, reconnection with
backoff, JSON-RPC request correlation, rate limiting, subscription restore, latency stats, recording.
Every decision is made by a pure object from feeder.core; this module only moves frames and time.

Rules it keeps:
- receive path: one orjson.loads per frame; answers go to the correlator, heartbeats are handled here,
  everything else goes straight to `on_notification(msg, recv_ns)` (recv_ns: time.time_ns() read as
  soon as the frame arrived). A bad frame or a raising handler is counted and logged (throttled), never
  fatal to the loop.
- after every (re)connect, in this order: heartbeat setup request, `hooks.on_connected(client)`,
  subscription restore; only then is the state `connected` and do other requests flow.
- requests never outlive their timeout; when the connection drops, every pending one fails at once with
  ConnectionLost(sent=...); nothing is retried here (orders are at most once).
- the venue is never named: method names come from Hooks and the heartbeat table.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from feeder.client.config import ClientConfig
from feeder.client.hooks import Event, Hooks
from feeder.client.recorder import Recorder
from feeder.client.requests import Requests
from feeder.client.sharedbucket import SharedBucket
from feeder.client.transport import open_connection
from feeder.core import failure
from feeder.core.backoff import Backoff
from feeder.core.heartbeat import KINDS, HeartbeatMonitor, Verdict
from feeder.core.ratelimit import DEFAULT, Bucket, Limiter, TokenBucket, cost_function
from feeder.core.recording import redact_url
from feeder.core.state import ConnState, advance
from feeder.core.subscriptions import SubscribeResult, Subscriptions, group_by_method, split_result
from feeder.core.throttle import LogThrottle
from feeder.errors import (
    ClientClosed,
    ConnectFailed,
    ConnectionLost,
    ExchangeError,
    NetworkError,
    UsageError,
)

logger = logging.getLogger("feeder.client")

NotificationHandler = Callable[[dict, int], None]
EventHandler = Callable[[Event], None]

# True inside the post-connect setup (and tasks it starts): its requests must not wait for "connected".
_IN_SETUP: contextvars.ContextVar[bool] = contextvars.ContextVar("feeder_client_setup", default=False)

_loads, _time_ns, _DecodeError = orjson.loads, time.time_ns, orjson.JSONDecodeError
_NO_METHOD = object()  # never equal to a message's "method"


def _ignore(_msg: dict, _recv_ns: int) -> None:
    pass


class _LinkDead(NetworkError):
    """The heartbeat watchdog declared the link dead (or too old) and replaced it."""


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
        self._on_notification = on_notification or _ignore
        self._on_event = on_event
        self._debug = config.debug or logger.isEnabledFor(logging.DEBUG)
        self._state = ConnState.IDLE
        self._ws: Any = None
        self._subs = Subscriptions()
        self._hb = HeartbeatMonitor(
            KINDS[config.heartbeat], config.heartbeat_interval, config.max_missed_heartbeats, time.time()
        )
        self._hb_method = self._hb.kind.server_method or _NO_METHOD
        self._backoff = Backoff(
            config.initial_delay,
            config.max_backoff,
            jitter=config.jitter,
            stable_after=config.stable_after,
            max_retries=config.max_retries,
        )
        self._rng = random.Random()
        self._requests = Requests(self._make_limiter(), config.latency_window, self._pressure_changed)
        self._throttle = LogThrottle()
        self._recorder: Recorder | None = None
        self._ready = asyncio.Event()
        self._runner: asyncio.Task | None = None
        self._first: asyncio.Future | None = None
        self._drop_reason: BaseException | None = None
        self._skip_backoff = False
        self._last_rx_ns = 0
        self._frames_in = self._bytes_in = self._frames_out = self._bytes_out = 0
        self._handler_errors = 0
        self._connects = self._reconnects = 0
        self._connected_since = 0.0
        self._last_error: tuple[str, float] | None = None
        self._established = False
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
        return self._state

    @property
    def subscriptions(self) -> list[str]:
        """Channels wanted (confirmed at least once and not unsubscribed), in subscription order."""
        return list(self._subs.wanted)

    async def connect(self) -> None:
        """Connect, set up and return when `connected`; retries with backoff; ConnectFailed on giving up."""
        if self._state is ConnState.CONNECTED:
            return
        if self._state not in (ConnState.IDLE, ConnState.CLOSED):
            raise UsageError(
                f"connect() while {self._state.value}; await the running connect or close() first"
            )
        self._first = asyncio.get_running_loop().create_future()
        if self.config.record_to is not None and self._recorder is None:
            self._recorder = Recorder(self.config.record_to, self.config.url)
        self._runner = asyncio.create_task(self._run(), name="feeder-client")
        try:
            await asyncio.shield(self._first)
        except asyncio.CancelledError:
            await self._stop(ClientClosed("connect() was cancelled"))
            raise

    async def reconnect(self) -> None:
        """Replace the connection now (no backoff wait) and return when connected again."""
        if self._state in (ConnState.IDLE, ConnState.CLOSED):
            await self.connect()
            return
        self._skip_backoff = True
        self._ready.clear()
        self._drop(_LinkDead("reconnect() requested"), abort=False)
        await self._wait_ready(
            "reconnect", time.monotonic() + self.config.connect_timeout + self.config.max_backoff
        )

    async def close(self, timeout: float | None = None) -> None:
        """Wait for pending answers, close the WebSocket gracefully, stop; all within `timeout` seconds."""
        if self._state in (ConnState.IDLE, ConnState.CLOSED, ConnState.CLOSING):
            if self._state is ConnState.IDLE:
                self._set_state(ConnState.CLOSED)
            return
        timeout = self.config.close_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        self._set_state(ConnState.CLOSING)
        waiters = self._requests.waiting_for_answers()
        if waiters:
            await asyncio.wait(waiters, timeout=max(0.0, deadline - time.monotonic()))
        ws = self._ws
        if ws is not None:
            try:
                await asyncio.wait_for(ws.close(), max(0.01, deadline - time.monotonic()))
            except (TimeoutError, OSError):
                ws.transport.abort()
        await self._stop(ClientClosed("the client was closed"))

    async def request(self, method: str, params: Any = None, timeout: float | None = None) -> Any:
        """Send a JSON-RPC request and return its result; ExchangeError, RequestTimeout, ConnectionLost,
        RateLimited (not sent: limiter queue full or waited past the timeout) or ClientClosed."""
        if self._state in (ConnState.IDLE, ConnState.CLOSED, ConnState.CLOSING):
            raise ClientClosed(f"{method}: the client is {self._state.value}; call connect() first")
        timeout = self.config.request_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        in_setup = _IN_SETUP.get()
        if not self._ready.is_set() and not in_setup:
            await self._wait_ready(method, deadline)
        if self._requests.limiter is not None:
            await self._requests.admit(method, deadline)
            if not self._ready.is_set() and not in_setup:  # the connection was replaced while it queued
                await self._wait_ready(method, deadline)
        return await self._call(method, params, deadline, timeout)

    async def subscribe(self, channels: Iterable[str]) -> SubscribeResult:
        """Subscribe; returns (confirmed, refused {channel: reason}). Refused ones are also reported as a
        `subscription_refused` event. An exchange error refuses the whole chunk it was sent in."""
        channels = list(dict.fromkeys(channels))
        method_for = self.hooks.method_for("subscribe")
        confirmed: list[str] = []
        refused: dict[str, str] = {}
        for method, chunk in self._groups(channels, method_for):
            try:
                result = split_result(chunk, await self.request(method, {"channels": chunk}))
            except ExchangeError as e:
                result = SubscribeResult([], dict.fromkeys(chunk, str(e)))
            self._subs.confirmed(result)
            confirmed += result.confirmed
            refused.update(result.refused)
        self._report_subscribed(confirmed, refused)
        return SubscribeResult(confirmed, refused)

    async def unsubscribe(self, channels: Iterable[str]) -> list[str]:
        """Unsubscribe; the channels stop being restored whatever the server answers. Returns the
        channels the server said it removed (empty when not connected)."""
        channels = list(dict.fromkeys(channels))
        self._subs.removed(channels)
        if self._state is not ConnState.CONNECTED:
            return []
        removed: list[str] = []
        for method, chunk in self._groups(channels, self.hooks.method_for("unsubscribe")):
            result = await self.request(method, {"channels": chunk})
            removed += [ch for ch in chunk if isinstance(result, list) and ch in result]
        self._emit("unsubscribed", channels=channels)
        return removed

    async def send(self, message: str | bytes) -> None:
        """Send a raw frame (str → text, bytes → binary); not correlated and not rate limited."""
        ws = self._ws
        if ws is None or ws.state is not State.OPEN:
            raise ConnectionLost("send", sent=False, reason="not connected")
        await self._send_frame(ws, message, text=isinstance(message, str))

    def latency_stats(self) -> dict[str, float | int]:
        """Request round-trip times in seconds over the last `latency_window` answers."""
        return self._requests.latency.summary()

    def heartbeat_health(self) -> dict[str, Any]:
        return self._hb.health()

    def metrics(self) -> dict[str, Any]:
        now = time.monotonic()
        connected = self._state is ConnState.CONNECTED
        return {
            "state": self._state.value,
            "url": redact_url(self.config.url),
            "frames_in": self._frames_in,
            "bytes_in": self._bytes_in,
            "frames_out": self._frames_out,
            "bytes_out": self._bytes_out,
            "connects": self._connects,
            "reconnects": self._reconnects,
            "uptime_s": now - self._connected_since if connected else 0.0,
            "last_error": None if self._last_error is None else self._last_error[0],
            "last_error_time": None if self._last_error is None else self._last_error[1],
            **self._requests.stats(),
            "bad_input": dict(self._throttle.counts),
            "handler_errors": self._handler_errors,
            "subscriptions": len(self._subs.wanted),
            "refused_subscriptions": self._subs.refused_total,
            "recorder": None
            if self._recorder is None
            else {"written": self._recorder.written, "dropped": self._recorder.dropped},
        }

    # --- connection lifecycle --------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            error = await self._session()
            if self._state in (ConnState.CLOSING, ConnState.CLOSED):
                return
            if not await self._retry_or_give_up(error):
                return

    async def _session(self) -> BaseException:
        """One connection from open to loss; returns the error that ended it."""
        self._set_state(ConnState.CONNECTING)
        try:
            ws = await open_connection(self.config, self._dispatch)
        except Exception as e:
            return e
        self._opened(ws)
        reader = asyncio.create_task(self._read(ws), name="feeder-client-read")
        watchdog = asyncio.create_task(self._watch(ws), name="feeder-client-heartbeat")
        setup = asyncio.create_task(self._setup(), name="feeder-client-setup")
        try:
            await asyncio.wait((reader, setup), return_when=asyncio.FIRST_COMPLETED)
            if setup.done() and setup.exception() is None and not reader.done():
                self._now_connected()
                await asyncio.wait((reader,))
            elif setup.done() and setup.exception() is not None and self._drop_reason is None:
                self._drop(setup.exception(), abort=True)
            return self._drop_reason or await reader
        finally:
            for task in (setup, watchdog, reader):
                task.cancel()
            await asyncio.gather(setup, watchdog, reader, return_exceptions=True)
            self._closed_connection()

    def _opened(self, ws: Any) -> None:
        self._ws = ws
        self._drop_reason = None
        self._requests.rate_limited = False
        now = time.time()
        self._last_rx_ns = time.time_ns()
        self._hb.reset(now)
        self._backoff.connected(time.monotonic())
        self._connects += 1
        if self._debug:
            logger.debug("connected to %s", redact_url(self.config.url))

    async def _setup(self) -> None:
        _IN_SETUP.set(True)
        setup = self._hb.setup_request()
        if setup is not None:
            await self.request(*setup)
        if self.hooks.on_connected is not None:
            await self.hooks.on_connected(self)
        if self.config.restore_subscriptions and self._subs.wanted:
            await self._restore()

    async def _restore(self) -> None:
        plan = self._subs.to_restore(self.hooks.method_for("subscribe"), self.hooks.max_channels_per_request)
        confirmed: list[str] = []
        refused: dict[str, str] = {}
        for method, chunk in plan:
            try:
                result = split_result(chunk, await self.request(method, {"channels": chunk}))
            except ExchangeError as e:
                result = SubscribeResult([], dict.fromkeys(chunk, f"refused on restore: {e}"))
            self._subs.confirmed(result)
            confirmed += result.confirmed
            refused.update(result.refused)
        self._report_subscribed(confirmed, refused)

    def _now_connected(self) -> None:
        self._set_state(ConnState.CONNECTED)
        self._established = True
        self._connected_since = time.monotonic()
        self._ready.set()
        self._emit("connected", url=redact_url(self.config.url), attempt=self._backoff.attempts)
        if self._first is not None and not self._first.done():
            self._first.set_result(None)

    def _closed_connection(self) -> None:
        """The socket is gone: fail what was pending, reset per-connection state, tell the hook."""
        was_connected, self._established = self._established, False
        self._ws = None
        self._ready.clear()
        reason = self._drop_reason
        text = str(reason) if reason is not None else "connection closed"
        self._requests.fail_pending(text)
        self._subs.disconnected()
        self._backoff.disconnected(time.monotonic())
        if was_connected:
            self._emit(
                "disconnected",
                reason=text,
                category=failure.explain(reason or NetworkError(text)).category.value,
            )
            self._call_disconnected_hook()

    def _call_disconnected_hook(self) -> None:
        hook = self.hooks.on_disconnected
        if hook is None:
            return
        try:
            result = hook()
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                self._background.add(task)
                task.add_done_callback(self._background.discard)
                task.add_done_callback(self._hook_done)
        except Exception:
            logger.exception("on_disconnected hook raised")

    @staticmethod
    def _hook_done(task: asyncio.Future) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error("on_disconnected hook raised: %r", task.exception())

    def _drop(self, reason: BaseException, abort: bool) -> None:
        """End the current connection for `reason` (the reader then returns and the session ends)."""
        if self._drop_reason is None:
            self._drop_reason = reason
        ws = self._ws
        if ws is None:
            return
        if abort:
            ws.transport.abort()
        else:
            task = asyncio.ensure_future(self._close_ws(ws))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _close_ws(self, ws: Any) -> None:
        try:
            await asyncio.wait_for(ws.close(), self.config.close_timeout)
        except (TimeoutError, OSError):
            ws.transport.abort()

    async def _retry_or_give_up(self, error: BaseException) -> bool:
        why = failure.explain(error)
        self._last_error = (str(why), time.time())
        if self._requests.rate_limited and why.category is failure.Category.RECOVERABLE:
            why = failure.Explanation(
                failure.Category.RATE_LIMITED, why.message, "waiting for credits to refill"
            )
        if why.fatal or not self.config.reconnect_on_error or self._backoff.exhausted():
            if why.fatal:
                advice = why.advice
            elif not self.config.reconnect_on_error:
                advice = "Not retrying: reconnect_on_error is off; call connect() to try again."
            else:
                advice = f"Gave up after {self._backoff.attempts} retries (max_retries); {why.advice}"
            await self._stop(ConnectFailed(why.message, advice, why.fatal))
            return False
        delay = self._next_delay(why.category)
        self._set_state(ConnState.RECONNECTING)
        self._reconnects += 1
        self._emit("reconnecting", delay=delay, attempt=self._backoff.attempts, reason=str(why))
        logger.warning("connection lost (%s); reconnecting in %.2f s", why, delay)
        await asyncio.sleep(delay)
        return True

    def _next_delay(self, category: failure.Category) -> float:
        if self._skip_backoff:
            self._skip_backoff = False
            return 0.0
        at_least = 0.0
        if category is failure.Category.RATE_LIMITED:
            refilled = self._requests.overspent()
            at_least = self.config.max_backoff if refilled is None else refilled
        return self._backoff.next_delay(self._rng, at_least)

    async def _stop(self, error: BaseException) -> None:
        """Become closed: cancel the runner, fail every waiter, flush the recording."""
        runner, self._runner = self._runner, None
        if runner is not None and runner is not asyncio.current_task():
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        if self._ws is not None:
            self._ws.transport.abort()
            self._closed_connection()
        self._requests.fail_queued(str(error))
        self._requests.stop()
        if self._state is not ConnState.CLOSED:
            if isinstance(error, ConnectFailed):
                self._emit("gave_up", reason=str(error), advice=error.advice, fatal=error.fatal)
                logger.error("%s", error)
            self._set_state(ConnState.CLOSED)
        if self._first is not None and not self._first.done():
            self._first.set_exception(error)
        self._ready.set()  # wake request() waiters: they will find the client closed
        self._ready = asyncio.Event()
        if self._recorder is not None:
            self._recorder.close()
            self._recorder = None
        self._emit("closed", reason=str(error))

    # --- requests --------------------------------------------------------------------------------

    async def _wait_ready(self, method: str, deadline: float) -> None:
        ready = self._ready
        try:
            await asyncio.wait_for(ready.wait(), max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise ConnectionLost(method, sent=False, reason="not connected before the timeout") from None
        if self._state is not ConnState.CONNECTED and not _IN_SETUP.get():
            raise ConnectionLost(method, sent=False, reason=f"the client is {self._state.value}")

    async def _call(self, method: str, params: Any, deadline: float, timeout: float) -> Any:
        ws = self._ws
        if ws is None or ws.state is not State.OPEN:
            raise ConnectionLost(method, sent=False, reason="not connected")

        def send(frame: bytes) -> Awaitable[None]:
            return self._send_frame(ws, frame, text=True)

        return await self._requests.call(method, params, deadline, timeout, send)

    def _pressure_changed(self, level: str, queued: int) -> None:
        self._emit("pressure", level=level, queued=queued)

    async def _send_frame(self, ws: Any, frame: str | bytes, text: bool) -> None:
        await ws.send(frame, text=text)
        self._frames_out += 1
        self._bytes_out += len(frame)
        if self._recorder is not None:
            if text and isinstance(frame, bytes):
                frame = frame.decode()
            self._recorder.record(time.time_ns(), "out", frame)

    # --- receive path ----------------------------------------------------------------------------

    def _dispatch(self, frame: bytes) -> None:
        """Hot path, once per received message: decode once, route, never raise."""
        recv_ns = _time_ns()
        self._last_rx_ns = recv_ns
        self._frames_in += 1
        self._bytes_in += len(frame)
        if self._recorder is not None:
            self._recorder.record(recv_ns, "in", frame)
        try:
            msg = _loads(frame)
        except _DecodeError:
            self._bad_input("malformed_json", frame)
            return
        if type(msg) is not dict:
            self._bad_input("not_an_object", frame)
            return
        if "id" in msg:
            if not self._requests.answer(msg):
                self._bad_input("unmatched_answer", msg)
            return
        if msg.get("method") == self._hb_method:
            self._on_heartbeat(msg)
            return
        try:
            self._on_notification(msg, recv_ns)
        except Exception as e:
            self._handler_errors += 1
            self._bad_input("handler_error", repr(e))

    async def _read(self, ws: Any) -> BaseException:
        """Wait for the connection to end and return why. Messages normally never reach this loop (the
        connection dispatches them as they are parsed, see transport.py); after a fragmented
        message they all come through websockets' own queue, here, in order."""
        try:
            while True:
                self._dispatch(await ws.recv(False))
        except ConnectionClosed as e:
            if failure.close_code(e) == failure.MESSAGE_TOO_BIG:
                self._bad_input("oversized_frame", str(e))
            return self._drop_reason or e
        except Exception as e:
            return self._drop_reason or e

    def _bad_input(self, kind: str, sample: Any) -> None:
        suppressed = self._throttle.hit(kind, time.monotonic())
        if suppressed is None:
            return
        count = self._throttle.counts[kind]
        logger.warning(
            "bad input from %s: %s (%d so far, %d not logged): %.200r",
            redact_url(self.config.url),
            kind,
            count,
            suppressed,
            sample,
        )
        self._emit("bad_input", kind=kind, count=count, suppressed=suppressed)

    def _on_heartbeat(self, msg: dict) -> None:
        now = time.time()
        reply = self._hb.on_server_heartbeat(msg.get("params"), now)
        if reply is not None and self._ws is not None:
            task = asyncio.ensure_future(self._answer_heartbeat(reply, now))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _answer_heartbeat(self, method: str, received: float) -> None:
        """Answer at once: bypasses the limiter queue (but spends its credits) and the ready gate."""
        self._requests.spend_now(method)
        try:
            self._hb.answer_sent(time.time())
            timeout = self.config.request_timeout
            await self._call(method, None, time.monotonic() + timeout, timeout)
            self._hb.answer_acknowledged(received, time.time())
        except Exception as e:
            if self._debug:
                logger.debug("heartbeat answer %s failed: %r", method, e)

    async def _watch(self, ws: Any) -> None:
        """The heartbeat watchdog: acts on the monitor's verdicts a few times per interval."""
        hb = self._hb
        if not (
            hb.kind.silence_intervals or hb.kind.client_pings or hb.kind.probe_when_silent or hb.kind.max_age
        ):
            return
        period = max(0.02, hb.interval / 4)
        while True:
            await asyncio.sleep(period)
            now = time.time()
            verdict = hb.tick(now, self._last_rx_ns / 1e9)
            if verdict is Verdict.PING:
                await self._ping(ws, hb.ping_sent(now), now)
            elif verdict is Verdict.DEAD or verdict is Verdict.ROTATE:
                self._emit("heartbeat_dead", reason=hb.reason, verdict=verdict.value)
                logger.warning("heartbeat: %s; replacing the connection", hb.reason)
                self._drop(_LinkDead(f"heartbeat: {hb.reason}"), abort=verdict is Verdict.DEAD)
                return

    async def _ping(self, ws: Any, payload: bytes, sent_at: float) -> None:
        try:
            pong = await ws.ping(payload)
        except Exception as e:  # closing, or closed: the reader will report why
            if self._debug:
                logger.debug("ping failed: %r", e)
            return
        pong.add_done_callback(
            lambda f: f.cancelled() or f.exception() or self._hb.pong(sent_at, time.time())
        )

    # --- helpers ---------------------------------------------------------------------------------

    def _groups(self, channels: list[str], method_for: Callable[[str], str]) -> list[tuple[str, list[str]]]:
        return group_by_method(channels, method_for, self.hooks.max_channels_per_request)

    def _report_subscribed(self, confirmed: list[str], refused: dict[str, str]) -> None:
        if confirmed:
            self._emit("subscribed", channels=confirmed)
        if refused:
            logger.warning("subscriptions refused: %s", refused)
            self._emit("subscription_refused", refused=refused)

    def _set_state(self, target: ConnState) -> None:
        before = self._state
        self._state = advance(before, target)
        self._emit("state", **{"from": before.value, "to": target.value})

    def _emit(self, name: str, **data: Any) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(Event(name, time.time_ns(), data))
        except Exception:
            logger.exception("on_event handler raised for %s", name)
