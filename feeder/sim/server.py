"""The asyncio shell: WebSocket and HTTP on one port, the publishing clock, heartbeats, faults.

- `/ws/api/v2`: Deribit JSON-RPC over WebSocket (compression off; the server sends no pings of its own,
  liveness is the JSON-RPC heartbeat as on Deribit, and answers the client's pings, except while the
  session is stalled: a stalled link sends nothing at all, or only pongs with the stall's `pongs`).
- `GET /api/v2/<method>?<params>`: the same methods over HTTP (through websockets' process_request).
- `/sim/control`: the control channel (JSON commands, see control.py).

The publisher generates `rate` book updates per second in batches (one batch per ~1 ms tick, at
most MAX_BATCH per loop turn so requests stay responsive); when the machine cannot keep up it
publishes as fast as it can and counts the shortfall (`lagged_updates`) instead of building an
unbounded backlog. Everything else (requests, ticks, faults) runs between batches on one loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections import deque
from collections.abc import Coroutine
from typing import Any
from urllib.parse import parse_qsl

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request as HttpRequest
from websockets.http11 import Response
from websockets.protocol import State

from feeder.errors import ConfigError
from feeder.sim import faults
from feeder.sim.api import Api, Ctx, TooManyRequests
from feeder.sim.auth import Accounts
from feeder.sim.catalogue import build_catalogue
from feeder.sim.clock import SimClock, wall_ms
from feeder.sim.config import SimConfig
from feeder.sim.control import serve_control
from feeder.sim.hub import Hub
from feeder.sim.lifecycle import Lifecycle
from feeder.sim.market import BookChange, Market
from feeder.sim.ratelimit import Limiter
from feeder.sim.rpc import Request, RpcError, error_message, now_us, parse_request, result_message
from feeder.sim.session import Session, text_frame
from feeder.sim.tls import server_context
from feeder.sim.truth import TruthLog

WS_PATH = "/ws/api/v2"
HTTP_PREFIX = "/api/v2/"
CONTROL_PATH = "/sim/control"
TICK = 0.001
MAX_BATCH = 2000
MAX_LAG_SECONDS = 1.0
INTERVAL = 0.1  # 100ms and agg2 channels
INDEX_INTERVAL = 1.0
RECEIVED_KEPT = 10_000
_REDACT = ("client_secret", "signature", "refresh_token", "access_token")


class _Connection(ServerConnection):
    """websockets' server connection, silent while its session is stalled: websockets answers pings by
    itself, and a stalled link must not (unless the stall says `pongs`: a front end alive, the exchange
    behind it hung). A closing handshake still completes (a client that gives up on a stalled link is
    not kept waiting)."""

    session: Session | None = None

    def send_data(self) -> None:
        s = self.session
        silent = (
            s is not None
            and s.stalled_until is not None
            and s.stalled(time.monotonic())
            and not s.stall_pongs
        )
        if silent and self.protocol.state is State.OPEN:
            self.protocol.data_to_send()  # discarded, like the stalled session's frames
            return
        super().send_data()


class SimApp:
    """The simulator inside its event loop."""

    def __init__(self, config: SimConfig):
        if config.tls and not config.tls_cert:
            raise ConfigError(
                "tls_cert", None, "SimApp needs the certificate: use SimConfig.with_certificate()"
            )
        self.config = config
        self.clock = SimClock(config.start_ms, config.clock_speed, wall_ms())
        now = self.clock.now(wall_ms())
        self.catalogue = build_catalogue(config.instruments, now, config.chain)
        self.truth_log = TruthLog(config.truth_log) if config.truth_log else None
        self.market = Market(self.catalogue, config.seed, config.truth_window, self.truth_log)
        self.market.reprice(now)
        self.hub = Hub(self.market, self.clock, config.send_buffer_limit, config.sent_window, self.truth_log)
        self.lifecycle = Lifecycle(
            self.market, self.hub, config.chain, config.settlement_grace, now, config.instrument_states
        )
        self.accounts = Accounts(config.credentials, config.token_ttl)
        self.limiter = Limiter(config.matching_limit) if config.rate_limits else None
        self.api = Api(
            self.market, self.hub, self.accounts, self.limiter, self, config.min_heartbeat_interval,
            config.matching_limit,
        )  # fmt: skip
        self.rate = float(config.rate)
        self.port = config.port
        self.servers: list[Server] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.stopped = asyncio.Event()
        self._stopping = False
        self._next_id = 0
        self._rate_changed = asyncio.Event()
        self._refuse_429_until = 0.0
        self.received: deque[dict[str, Any]] = deque(maxlen=RECEIVED_KEPT)
        self.received_seq = 0
        self._received_event = asyncio.Event()
        self.started_ns = time.time_ns()
        self.lagged = 0
        self.batches = 0
        self._background: set[asyncio.Task[None]] = set()  # fire-and-forget tasks, referenced until done
        self._relisten_at = 0.0

    # --- lifecycle ---------------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def start(self) -> int:
        await self._listen()
        loop = asyncio.get_running_loop()
        self.tasks = [loop.create_task(self._publisher()), loop.create_task(self._clock())]
        return self.port

    async def _listen(self) -> None:
        sock = socket.create_server((self.config.host, self.port), backlog=128)
        self.port = sock.getsockname()[1]
        cert, key = self.config.tls_cert, self.config.tls_key  # both or neither (SimConfig checks)
        tls = server_context(cert, key) if cert and key else None
        server = await serve(
            self._handler,
            sock=sock,
            ssl=tls,
            process_request=self._process_request,
            compression=None,
            ping_interval=None,
            max_size=2**20,
            max_queue=64,
            server_header="feeder-sim",
            create_connection=_Connection,
            open_timeout=60,  # generous: the machines running the tests are loaded
        )
        self.servers.append(server)

    async def stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        for task in self.tasks:
            task.cancel()
        for server in self.servers:
            server.close()
        for server in self.servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5)
        if self.truth_log is not None:
            self.truth_log.close()
        self.stopped.set()

    # --- HTTP and routing --------------------------------------------------------------------------

    def _process_request(self, conn: ServerConnection, request: HttpRequest) -> Response | None:
        path, _, query = request.path.partition("?")
        if time.monotonic() < self._refuse_429_until:
            self.hub.counters["refused_429"] += 1
            return _response(429, b"Too Many Requests (simulated refusal)\n", "text/plain")
        if path.startswith(HTTP_PREFIX):
            return self._http(conn, request, path[len(HTTP_PREFIX) :], query)
        if path == WS_PATH:
            ip = conn.remote_address[0] if conn.remote_address else "?"
            if sum(1 for s in self.hub.sessions.values() if s.ip == ip) >= self.config.max_connections_per_ip:
                self.hub.counters["refused_connection_limit"] += 1
                return _response(429, b"Too Many Requests: connection limit per IP\n", "text/plain")
            return None
        if path == CONTROL_PATH:
            return None
        return _response(
            404, f"no such endpoint {path}; use {WS_PATH} or {HTTP_PREFIX}<method>\n".encode(), "text/plain"
        )

    def _http(self, conn: ServerConnection, request: HttpRequest, method: str, query: str) -> Response:
        us_in = now_us()
        self.hub.counters["http_requests"] += 1
        params: dict[str, Any] = {}
        for key, value in parse_qsl(query, keep_blank_values=True):
            if key not in params:
                params[key] = value
            else:
                old = params[key]
                params[key] = [*old, value] if isinstance(old, list) else [old, value]
        ip = conn.remote_address[0] if conn.remote_address else "?"
        ctx = Ctx(None, f"ip:{ip}", request.headers.get("Authorization"))
        req = Request(None, False, method, params, bool(params))
        try:
            body, status = result_message(None, False, self.api.call(ctx, req), us_in), 200
        except RpcError as err:
            self.hub.counters[f"error_{err.code}"] += 1
            body, status = error_message(None, False, err, us_in), 429 if err.code == 10028 else 400
        for action in ctx.after:
            action()
        self.hub.flush()
        return _response(status, body, "application/json")

    async def _handler(self, conn: ServerConnection) -> None:
        if conn.request is not None and conn.request.path.partition("?")[0] == CONTROL_PATH:
            await serve_control(self, conn)
        else:
            await self._serve_client(conn)

    # --- client connections ------------------------------------------------------------------------

    async def _serve_client(self, conn: ServerConnection) -> None:
        self._next_id += 1
        s = Session(self._next_id, conn, cod=False)
        if isinstance(conn, _Connection):
            conn.session = s
        self.hub.add_session(s)
        try:
            async for message in conn:
                self._on_message(s, message)
        except ConnectionClosed:
            pass
        finally:
            self._closed(s)

    def _on_message(self, s: Session, message: str | bytes) -> None:
        if s.closing:
            return
        us_in = now_us()
        s.last_recv = time.monotonic()
        s.requests += 1
        self.hub.clock = s.last_recv
        try:
            req = parse_request(message)
        except RpcError as err:
            self._record(s, message, None)
            self.hub.counters[f"error_{err.code}"] += 1
            self.hub.reply(s, error_message(err.request_id, err.request_id is not None, err, us_in))
            self.hub.flush()
            return
        self._record(s, message, req)
        if s.rate_limit_next is not None:
            fault, s.rate_limit_next = s.rate_limit_next, None
            self._refuse_request(s, req, TooManyRequests("simulated"), us_in, fault)
            return
        ctx = Ctx(s, f"conn:{s.id}")
        try:
            result = self.api.call(ctx, req)
        except TooManyRequests as err:
            self._refuse_request(s, req, err, us_in)
            return
        except RpcError as err:
            self.hub.counters[f"error_{err.code}"] += 1
            self.hub.reply(s, error_message(req.id, req.has_id, err, us_in))
        else:
            self.hub.reply(s, result_message(req.id, req.has_id, result, us_in))
            for action in ctx.after:
                action()
        self.hub.flush()

    def _refuse_request(
        self, s: Session, req: Request, err: RpcError, us_in: int, fault: faults.RateLimitFault | None = None
    ) -> None:
        """10028, then the session is terminated (as Deribit does when credits run out). The `rate_limit`
        fault may send it with "id": null and refuse new connections (HTTP 429) for a while after."""
        self.hub.counters["error_10028"] += 1
        null_id = fault is not None and fault.null_id
        self.hub.reply(s, error_message(None if null_id else req.id, req.has_id or null_id, err, us_in))
        self.hub.flush()
        self.close_session(s, 1008, "too_many_requests")
        if fault is not None and fault.refuse_s > 0:
            self.hub.counters["rate_limit_refusal_windows"] += 1
            self._refuse_429_until = max(self._refuse_429_until, time.monotonic() + fault.refuse_s)

    def _record(self, s: Session, message: str | bytes, req: Request | None) -> None:
        text = message if isinstance(message, str) else message.decode("utf-8", "replace")
        if req is not None and (req.method == "public/auth" or any(k in req.params for k in _REDACT)):
            redacted = {k: ("***" if k in _REDACT else v) for k, v in req.params.items()}
            body = {"jsonrpc": "2.0", "id": req.id, "method": req.method, "params": redacted}
            text = orjson.dumps(body).decode()
        self.received_seq += 1
        self.received.append({"seq": self.received_seq, "conn": s.id, "text": text, "ts_ns": time.time_ns()})
        self._received_event.set()
        self._received_event = asyncio.Event()

    async def wait_received(self, since: int, timeout: float) -> None:
        """Until a client message with seq >= since was recorded, or timeout."""
        if self.received_seq >= since:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._received_event.wait(), timeout)

    def _closed(self, s: Session) -> None:
        self.stop_heartbeat(s)
        self.hub.remove_session(s)
        if self.limiter is not None:
            self.limiter.forget(f"conn:{s.id}")
        if s.cod and s.close_cancels:
            count = self.api.trading.cancel_connection(s, self.hub.now_ms())
            self.hub.counters["cancel_on_disconnect_orders"] += count
        self.hub.flush()

    def close_session(self, s: Session, code: int, reason: str, cancel_orders: bool = True) -> None:
        """Close a client connection cleanly (a close frame with `code`)."""
        s.close_cancels = cancel_orders
        self.hub.flush()
        s.closing = True
        self._spawn(s.conn.close(code, reason))

    def reset_session(self, s: Session) -> None:
        """Abort a client connection (TCP reset, no close frame)."""
        self.hub.flush()
        s.closing = True
        s.conn.transport.abort()

    # --- heartbeats --------------------------------------------------------------------------------

    def start_heartbeat(self, s: Session, interval: float) -> None:
        self.stop_heartbeat(s)
        s.hb_interval, s.hb_pending = interval, False
        s.hb_task = asyncio.get_running_loop().create_task(self._heartbeat(s))

    def stop_heartbeat(self, s: Session) -> None:
        if s.hb_task is not None:
            s.hb_task.cancel()
        s.hb_task, s.hb_interval, s.hb_pending = None, None, False

    async def _heartbeat(self, s: Session) -> None:
        """test_request every interval; one left unanswered by the next interval closes the connection."""
        assert s.hb_interval is not None
        while True:
            await asyncio.sleep(s.hb_interval)
            if s.hb_pending:
                self.hub.counters["heartbeat_closes"] += 1
                self.close_session(s, 1000, "heartbeat: test_request was not answered")
                return
            if s.hb_drop:
                s.hb_drop -= 1
                self.hub.counters["fault_drop_test_request_applied"] += 1
                continue
            if s.hb_delay_count:
                s.hb_delay_count -= 1
                self.hub.counters["fault_delay_test_request_applied"] += 1
                await asyncio.sleep(s.hb_delay)
            self.hub.clock = time.monotonic()
            s.hb_pending = self.hub.queue(s, text_frame(faults.TEST_REQUEST))
            self.hub.flush()

    # --- the clocks --------------------------------------------------------------------------------

    def set_rate(self, rate: float) -> None:
        self.rate = float(rate)
        self._rate_changed.set()

    def publish_now(self, n: int, only: int | None) -> list[BookChange]:
        changes = self.market.generate(n, self.hub.now_ms(), only)
        self.hub.clock = time.monotonic()
        self.hub.publish(changes)
        self.hub.flush()
        return changes

    async def _publisher(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self.rate <= 0:
                self._rate_changed.clear()
                await self._rate_changed.wait()
                continue
            rate, start, done = self.rate, loop.time(), 0
            self._rate_changed.clear()
            while rate == self.rate and not self._rate_changed.is_set():
                now = loop.time()
                due = int((now - start) * rate) - done
                if due > rate * MAX_LAG_SECONDS:
                    skipped = due - int(rate * TICK) - 1
                    self.lagged += skipped
                    done += skipped
                    due -= skipped
                if due > 0:
                    n = min(due, MAX_BATCH)
                    self.publish_now(n, None)
                    self.batches += 1
                    done += n
                    if n == MAX_BATCH:
                        await asyncio.sleep(0)
                        continue
                await asyncio.sleep(max(TICK, start + (done + 1) / rate - loop.time()))

    async def _clock(self) -> None:
        loop = asyncio.get_running_loop()
        next_tick = next_index = loop.time()
        while True:
            next_tick += INTERVAL
            await asyncio.sleep(max(0.0, next_tick - loop.time()))
            ts_ms = self.hub.now_ms()
            self.hub.clock = time.monotonic()
            self.lifecycle.tick(ts_ms, self.hub.clock)
            self.hub.tick(ts_ms)
            if loop.time() >= next_index:
                next_index += INDEX_INTERVAL
                self.market.reprice(ts_ms)
                self.hub.index_tick(ts_ms)
                self._close_idle()
                if self.truth_log is not None:
                    self.truth_log.flush()
            self.hub.flush()

    def _close_idle(self) -> None:
        limit = time.monotonic() - self.config.idle_timeout
        for s in list(self.hub.sessions.values()):
            if s.last_recv < limit and s.is_open and not s.closing:
                self.hub.counters["idle_closes"] += 1
                self.close_session(s, 1000, "idle: nothing received for too long")

    # --- refusing connections ----------------------------------------------------------------------

    def refuse(self, seconds: float, how: str) -> None:
        """Refuse new connections for `seconds`: HTTP 429, or stop listening (connection refused)."""
        if how == "429":
            self._refuse_429_until = time.monotonic() + seconds
            return
        relistening = self._relisten_at > 0
        self._relisten_at = max(self._relisten_at, time.monotonic() + seconds)
        if not relistening:
            for server in self.servers:
                server.server.close()
            self._spawn(self._listen_again())

    async def _listen_again(self) -> None:
        while (left := self._relisten_at - time.monotonic()) > 0:
            await asyncio.sleep(left)
        self._relisten_at = 0.0
        await self._listen()


def _response(status: int, body: bytes, content_type: str) -> Response:
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 429: "Too Many Requests"}.get(status, "Error")
    headers = Headers(
        [("Content-Type", content_type), ("Content-Length", str(len(body))), ("Connection", "close")]
    )
    return Response(status, reason, headers, body)
