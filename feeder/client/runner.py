"""The lifecycle runner: feeds the pure lifecycle (feeder.core.state) and carries out its actions.

The one place where sockets open and close, where the setup and restore steps run and where the
backoff timer is armed. Events are handled one at a time, in order: an event raised while actions
run (a step that finished at once, credits drained) waits its turn, so no action ever sees a
half-done transition.

Rules it keeps:
- one link at a time; a step (open, set up, restore) belongs to the connection it started on: if
  that connection is gone when it ends, its outcome is dropped;
- after every open, in this order: heartbeat setup request, `hooks.on_connected(setup)`, restore;
  then `connected` (requests flow);
- a connection that opened and was lost is reported once: `disconnected` and `on_disconnected`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from websockets.exceptions import ConnectionClosed

from feeder.client.liveness import Watchdog
from feeder.client.receive import Inbox
from feeder.client.requests import Requests
from feeder.client.setup import Setup
from feeder.client.transport import Link, open_link
from feeder.core import failure
from feeder.core import state as lc
from feeder.core.backoff import Backoff
from feeder.core.heartbeat import HeartbeatMonitor, Verdict
from feeder.core.recording import redact_url
from feeder.core.subscriptions import Subscriptions
from feeder.errors import ClientClosed, NetworkError

if TYPE_CHECKING:
    from feeder.client.connection import Client

logger = logging.getLogger("feeder.client")
T = TypeVar("T")


class LinkDead(NetworkError):
    """The heartbeat watchdog (or the caller) replaced the link."""


class Runner:
    def __init__(
        self,
        client: Client,
        requests: Requests,
        subs: Subscriptions,
        inbox: Inbox,
        monitor: HeartbeatMonitor,
        restore: Callable[[Setup], Awaitable[Any]],
        emit: Callable[..., None],
    ):
        config = client.config
        self.client, self.config, self.hooks = client, config, client.hooks
        self._requests, self._subs, self._inbox, self._hb = requests, subs, inbox, monitor
        self._restore_with, self._emit = restore, emit
        backoff = Backoff(
            config.initial_delay,
            config.max_backoff,
            jitter=config.jitter,
            stable_after=config.stable_after,
            max_retries=config.max_retries,
        )
        self.life = lc.Lifecycle(lc.Policy(config.reconnect_on_error), backoff, random.Random())
        self.link: Link | None = None
        self.generation = 0  # which connection is current (1, 2, ...)
        self.ready = asyncio.Event()  # set while connected
        self.connects = self.reconnects = 0
        self.refused_connects = 0  # attempts turned away: HTTP 429 at the handshake, TCP refused
        self.connected_since = 0.0
        self.last_error: tuple[str, float] | None = None
        self._first: asyncio.Future[None] | None = None
        self._watchdog: Watchdog | None = None
        self._step: asyncio.Future[None] | None = None  # opening, setting up or restoring
        self._retry: asyncio.TimerHandle | None = None
        self._events: deque[lc.Event] = deque()
        self._feeding = False
        self._stop_reason: BaseException = ClientClosed("the client was closed")
        self._background: set[asyncio.Future[Any]] = set()

    # --- what the client asks for ----------------------------------------------------------------

    def start(self) -> asyncio.Future[None]:
        """Connect; the future resolves when connected, or fails with ConnectFailed on giving up."""
        self._first = asyncio.get_running_loop().create_future()
        self.feed(lc.Connect())
        return self._first

    def replace_now(self) -> None:
        self.ready.clear()
        self.feed(lc.Replace(LinkDead("reconnect() requested"), abort=False, at_once=True))

    async def shut_down(self, reason: BaseException, timeout: float) -> None:
        """Close: wait for pending answers, the closing handshake, then stop; within `timeout`."""
        deadline = time.monotonic() + timeout
        self._stop_reason = reason
        self.feed(lc.Close())
        if self.life.state is lc.ConnState.CLOSED:
            return
        self._stop_step()
        self._cancel_retry()
        waiters = self._requests.waiting_for_answers()
        if waiters:
            await asyncio.wait(waiters, timeout=max(0.0, deadline - time.monotonic()))
        link = self.link
        if link is not None:
            link.close()
            try:
                await asyncio.wait_for(link.wait_closed(), max(0.01, deadline - time.monotonic()))
            except TimeoutError:
                link.abort()
                await link.wait_closed()
        self.feed(lc.Closed())

    # --- events in, actions out ------------------------------------------------------------------

    def feed(self, event: lc.Event) -> None:
        """Hand `event` to the lifecycle and carry out its actions; events raised meanwhile queue up."""
        self._events.append(event)
        if self._feeding:
            return
        self._feeding = True
        try:
            while self._events:
                before = self.life.state
                actions = self.life.handle(self._events.popleft(), time.monotonic())
                if self.life.state is not before:
                    self._emit("state", **{"from": before.value, "to": self.life.state.value})
                for action in actions:
                    getattr(self, f"_do_{type(action).__name__}")(action)
        finally:
            self._feeding = False

    def _do_OpenSocket(self, _a: lc.OpenSocket) -> None:
        self._cancel_retry()
        self._start_step(self._open(), "feeder-client-open")

    def _do_RunSetup(self, _a: lc.RunSetup) -> None:
        self._start_step(self._setup(self.generation), "feeder-client-setup")

    def _do_Restore(self, _a: lc.Restore) -> None:
        self._start_step(self._restore(self.generation), "feeder-client-restore")

    def _do_GoLive(self, a: lc.GoLive) -> None:
        self.connected_since = time.monotonic()
        self.ready.set()
        self._emit("connected", url=redact_url(self.config.url), attempt=a.attempt)
        if self._first is not None and not self._first.done():
            self._first.set_result(None)

    def _do_DropSocket(self, a: lc.DropSocket) -> None:
        link = self.link
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
        self.link = None
        self.ready.clear()
        text = str(a.reason)
        self.last_error = (str(a.explanation), time.time())
        self._requests.fail_pending(text)
        self._subs.disconnected()
        if a.notify:
            self._emit("disconnected", reason=text, category=a.explanation.category.value)
            self._call_disconnected_hook()

    def _do_DrainCredits(self, _a: lc.DrainCredits) -> None:
        self.feed(lc.CreditsDrained(self._requests.overspent()))

    def _do_WaitToRetry(self, a: lc.WaitToRetry) -> None:
        self.reconnects += 1
        self._emit("reconnecting", delay=a.delay, attempt=a.attempt, reason=str(a.explanation))
        logger.info("connection lost (%s); reconnecting in %.2f s", a.explanation, a.delay)
        self._retry = asyncio.get_running_loop().call_later(a.delay, self.feed, lc.RetryDue())

    def _do_GiveUp(self, a: lc.GiveUp) -> None:
        self._emit("gave_up", reason=str(a.error), advice=a.error.advice, fatal=a.error.fatal)
        logger.error("%s", a.error)
        self._finish(a.error)

    def _do_Finish(self, _a: lc.Finish) -> None:
        self._finish(self._stop_reason)

    def _finish(self, error: BaseException) -> None:
        """Closed for good: fail every waiter, flush the recording."""
        self._stop_step()
        self._cancel_retry()
        self._requests.fail_queued(str(error))
        self._requests.stop()
        if self._first is not None and not self._first.done():
            self._first.set_exception(error)
            self._first.exception()  # retrieved: a cancelled connect() no longer awaits it
        self.ready.set()  # wake request() waiters: they will find the client closed
        self.ready = asyncio.Event()
        if self._inbox.recorder is not None:
            self._inbox.recorder.close()
            self._inbox.recorder = None
        self._emit("closed", reason=str(error))

    def _start_step(self, coro: Awaitable[None], name: str) -> None:
        self._step = asyncio.ensure_future(coro)
        self._step.set_name(name)

    def _stop_step(self) -> None:
        step, self._step = self._step, None
        if step is not None and step is not asyncio.current_task():
            step.cancel()

    def _cancel_retry(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None

    # --- the steps: open, set up, restore ----------------------------------------------------------

    async def _open(self) -> None:
        try:
            link = await open_link(self.config, self._inbox.dispatch, self._on_pong, self._on_lost)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self._step = None
            if failure.refused(e):
                self.refused_connects += 1
            self.feed(lc.Lost(e))
            return
        self._step = None
        self.link = link
        self.generation += 1
        self.connects += 1
        self._requests.forget_slow_down()
        self._inbox.last_message_ns = time.time_ns()
        self._hb.reset(time.time())
        if self.client._debug:
            logger.debug("connected to %s", redact_url(self.config.url))
        self._watchdog = Watchdog(self._hb, link, self._inbox, self._on_verdict, self.client._ask_liveness)
        self._watchdog.start()
        self.feed(lc.Opened())

    async def _setup(self, generation: int) -> None:
        setup = Setup(self.client, generation)
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
                await self._restore_with(Setup(self.client, generation))
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self._step_failed(generation, e)
            return
        self._step_done(generation, lc.Restored())

    def _step_done(self, generation: int, event: lc.Event) -> None:
        if generation == self.generation and self.life.live:
            self._step = None
            self.feed(event)

    def _step_failed(self, generation: int, error: BaseException) -> None:
        if generation == self.generation and self.life.live:
            self._step = None
            self.feed(lc.Replace(error, abort=True))

    # --- what the link and the watchdog report ---------------------------------------------------

    def _on_lost(self, error: BaseException) -> None:
        """The link's TCP connection is gone."""
        if isinstance(error, ConnectionClosed) and failure.close_code(error) == failure.MESSAGE_TOO_BIG:
            self._inbox.bad("oversized_frame", str(error))
        self.feed(lc.Lost(error, rate_limited=self._requests.rate_limited))

    def _on_pong(self, payload: bytes) -> None:
        if self._watchdog is not None:
            self._watchdog.pong(payload)

    def _on_verdict(self, verdict: Verdict, reason: str) -> None:
        self._emit("heartbeat_dead", reason=reason, verdict=verdict.value)
        logger.info("heartbeat: %s; replacing the connection", reason)
        self.feed(lc.Replace(LinkDead(f"heartbeat: {reason}"), abort=verdict is Verdict.DEAD))

    def _call_disconnected_hook(self) -> None:
        hook = self.hooks.on_disconnected
        if hook is None:
            return
        try:
            result = hook()
            if inspect.isawaitable(result):
                self.spawn(result).add_done_callback(_hook_done)
        except Exception:
            logger.exception("on_disconnected hook raised")

    def spawn(self, coro: Awaitable[T]) -> asyncio.Future[T]:
        """Run `coro` in the background, referenced until done."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task


def _hook_done(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("on_disconnected hook raised: %r", task.exception())
