"""Orders from other hosts: FeederHandle requests carried over NATS request-reply (off by default).

`feeder mirror --orders` subscribes to `feeder.<source>.orders` (queue group `feeder-orders`, so one
mirror answers each request) and forwards every request to the local supervisor through an ordinary
`AsyncFeederHandle`; `FeederHandle(nats=...)` (remote.py) sends them. The rules are the local ones:
- At most once: nothing is retried, on either side. A request that reached no responder (NATS says so
  at once) was not sent: FeederNotRunning. An order whose answer does not come back in time, or whose
  connection dropped after sending, is OutcomeUnknown with its label; a read-only request gets
  RequestTimeout or ConnectionLost.
- Whoever may publish on the orders subject may trade: restrict it with NATS permissions (users,
  nkeys, TLS), as the local control socket restricts itself to the key file's owner.

Requests are JSON `{"method", "params", "timeout"}`; replies `{"result": ...}` or `{"error": {...}}` with
the control socket's error encoding (runtime/wire.py), so the caller raises the same exception types.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson

from feeder import errors
from feeder.bridge.wire import Subjects
from feeder.runtime import wire
from feeder.runtime.control import _parse_request

log = logging.getLogger("feeder.bridge.orders")

QUEUE = "feeder-orders"
TRANSIT_MARGIN_S = 5.0  # the service enforces the timeout; the caller waits this much longer for the reply


def encode_request(method: str, params: dict[str, Any], timeout: float) -> bytes:
    return orjson.dumps({"method": method, "params": params, "timeout": timeout})


def decode_reply(data: bytes) -> Any:
    """The result of a reply, or the exception it carries raised."""
    try:
        reply = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise errors.RemoteProtocolError(f"reply over NATS is not JSON: {exc}") from None
    if not isinstance(reply, dict) or not ("result" in reply or "error" in reply):
        raise errors.RemoteProtocolError(f"reply over NATS is not a feeder reply: {reply!r:.200}")
    if "error" in reply:
        raise wire.error_from_wire(reply["error"] if isinstance(reply["error"], dict) else {})
    return reply["result"]


class OrderService:
    """The mirror's side: NATS requests in, the local supervisor's answers out."""

    def __init__(self, nc: Any, subjects: Subjects, instance: str):
        self.nc, self.subjects, self.instance = nc, subjects, instance
        self._handle: Any = None
        self._sub: Any = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.figures = {"requests": 0, "errors": 0, "refused": 0}

    async def start(self) -> None:
        self._sub = await self.nc.subscribe(self.subjects.orders, queue=QUEUE, cb=self._on_request)
        log.info("answering order requests on %s for feeder instance %r", self.subjects.orders, self.instance)

    async def _on_request(self, msg: Any) -> None:
        task = asyncio.get_running_loop().create_task(self._answer(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, msg: Any) -> None:
        self.figures["requests"] += 1
        try:
            request = orjson.loads(msg.data)
            if not isinstance(request, dict):
                raise errors.UsageError("an order request must be a JSON object")
            method, params, timeout = _parse_request(request)
            reply = {"result": await self._forward(method, params, timeout)}
        except orjson.JSONDecodeError as exc:
            self.figures["refused"] += 1
            reply = {"error": wire.error_to_wire(errors.UsageError(f"request is not JSON: {exc}"))}
        except errors.FeederError as exc:
            self.figures["errors"] += 1
            reply = {"error": wire.error_to_wire(exc)}
        except Exception as exc:  # a bug here must not stop the mirror; the caller still gets an answer
            log.exception("order request failed")
            reply = {"error": {"type": "FeederError", "message": f"internal error: {exc!r}"}}
        if msg.reply:
            try:
                await msg.respond(orjson.dumps(reply))
            except Exception as exc:  # the caller sees a timeout: OutcomeUnknown for an order
                log.error("could not send the reply to an order request: %r", exc)

    async def _forward(self, method: str, params: dict[str, Any], timeout: float) -> Any:
        from feeder.runtime.handle import AsyncFeederHandle

        if self._handle is None:  # nats="": the feeder of this host, whatever $FEEDER_HANDLE_NATS says
            self._handle = await AsyncFeederHandle.connect(self.instance, nats="")
        try:
            return await self._handle.rpc(method, params, timeout)
        except (errors.FeederNotRunning, errors.ConnectionLost, errors.OutcomeUnknown):
            # the local connection may be gone: the next request connects afresh (this one is not retried)
            handle, self._handle = self._handle, None
            await handle.close()
            raise

    async def close(self) -> None:
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception as exc:
                log.debug("orders: unsubscribe failed: %r", exc)
        for task in list(self._tasks):
            task.cancel()
        if self._handle is not None:
            await self._handle.close()
