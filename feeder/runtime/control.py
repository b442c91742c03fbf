"""The supervisor's control socket: authenticates FeederHandles and answers their requests.

Each request runs in its own task, so a slow order never holds up a status call; every request gets
exactly one answer (a result or an error), including when the supervisor shuts down.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from feeder import errors
from feeder.exchanges.methods import is_read_only
from feeder.runtime import wire

log = logging.getLogger("feeder.control")

Dispatch = Callable[[str, dict[str, Any], float], Awaitable[Any]]
HANDSHAKE_TIMEOUT = 5.0


class ControlServer:
    def __init__(self, socket_path: Path, key: str, dispatch: Dispatch, hello: dict[str, Any] | None = None):
        self._path, self._key, self._dispatch = socket_path, key, dispatch
        self._hello = dict(hello or {})  # told to every client that passes the handshake
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.refused = 0  # handshakes that failed (wrong key, garbage)
        self.requests = 0

    async def start(self) -> None:
        self._path.unlink(missing_ok=True)
        self._server = await asyncio.start_unix_server(self._serve, path=str(self._path))
        os.chmod(self._path, 0o600)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            if await self._handshake(reader, writer):
                await self._requests(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError, wire.WireError, TimeoutError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _handshake(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        nonce = wire.new_nonce()
        writer.write(wire.encode({"nonce": nonce}))
        reply = await asyncio.wait_for(wire.read_frame(reader), HANDSHAKE_TIMEOUT)
        if wire.verify(self._key, nonce, reply.get("proof")):
            writer.write(wire.encode({"ok": True, **self._hello}))
            return True
        self.refused += 1
        log.warning("control socket: refused a client with a wrong key")
        writer.write(wire.encode({"ok": False, "error": "wrong key"}))
        await writer.drain()
        return False

    async def _requests(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            message = await wire.read_frame(reader)
            task = asyncio.get_running_loop().create_task(self._answer(message, writer))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _answer(self, message: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        self.requests += 1
        rid = message.get("id")
        try:
            method, params, timeout = _parse_request(message)
            reply = {"id": rid, "result": await self._dispatch(method, params, timeout)}
        except errors.FeederError as exc:
            reply = {"id": rid, "error": wire.error_to_wire(exc)}
        except asyncio.CancelledError:
            if not writer.is_closing():
                writer.write(wire.encode({"id": rid, "error": wire.error_to_wire(_shutting_down(message))}))
            raise
        except Exception as exc:  # a bug here must not kill the supervisor; the caller still gets an answer
            log.exception("control request %r failed", message.get("method"))
            reply = {"id": rid, "error": {"type": "FeederError", "message": f"internal error: {exc!r}"}}
        if not writer.is_closing():
            writer.write(wire.encode(reply))

    async def close(self) -> None:
        """Stop accepting, answer what is in flight with an error, close every client."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for writer in list(self._writers):
            writer.close()
        self._path.unlink(missing_ok=True)


def _shutting_down(message: dict[str, Any]) -> errors.FeederError:
    method, params = str(message.get("method")), message.get("params") or {}
    why = "the feeder shut down before the answer"
    if is_read_only(method):
        return errors.FeederNotRunning(f"{method}: {why}")
    return errors.OutcomeUnknown(method, params.get("label") if isinstance(params, dict) else None, why)


def _parse_request(message: dict[str, Any]) -> tuple[str, dict[str, Any], float]:
    method, params, timeout = message.get("method"), message.get("params") or {}, message.get("timeout", 10.0)
    if not isinstance(method, str) or not method:
        raise errors.UsageError(f"request needs a method name, got {method!r}")
    if not isinstance(params, dict):
        raise errors.UsageError(f"{method}: params must be an object, got {type(params).__name__}")
    if not isinstance(timeout, int | float) or not 0 < timeout <= 3600:
        raise errors.UsageError(f"{method}: timeout must be 0 < seconds <= 3600, got {timeout!r}")
    return method, params, float(timeout)
