"""The receive path: every message the transport completes, decoded once and routed, never raising.

`Inbox.dispatch(frame, recv_ns)` is the transport's `on_message`, called inside `data_received`:
- one orjson.loads per message; an answer (it has an "id") goes to the request correlator, a server
  heartbeat to `on_heartbeat`, everything else straight to `on_notification(msg, recv_ns)`;
- a frame that is not JSON, not an object, an answer nobody waits for (`unmatched_answer`; an error
  with a null id is `error_without_id`), or a handler that raises is bad input: counted by kind, logged
  and reported (throttled), never fatal to the loop. An answer that asks us to slow down is not bad
  input whatever its id: the request correlator acts on it (requests.py);
- the recorder, when on, gets every message with its receive time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import orjson

from feeder.client.recorder import Recorder
from feeder.client.requests import Requests
from feeder.core.recording import redact_url
from feeder.core.throttle import LogThrottle

logger = logging.getLogger("feeder.client")

NotificationHandler = Callable[[dict[str, Any], int], None]
_loads, _DecodeError = orjson.loads, orjson.JSONDecodeError
_NO_METHOD = object()  # never equal to a message's "method"


def _ignore(_msg: dict[str, Any], _recv_ns: int) -> None:
    pass


class Inbox:
    def __init__(
        self,
        requests: Requests,
        on_notification: NotificationHandler | None,
        heartbeat_method: str | None,
        on_heartbeat: Callable[[dict[str, Any]], None],
        emit: Callable[..., None],
        url: str,
    ):
        self._requests = requests
        self._on_notification = on_notification or _ignore
        self._hb_method = heartbeat_method or _NO_METHOD
        self._on_heartbeat = on_heartbeat
        self._emit = emit
        self._url = redact_url(url)
        self._throttle = LogThrottle()
        self.recorder: Recorder | None = None
        self.last_message_ns = 0
        self.frames = self.bytes = 0
        self.handler_errors = 0

    @property
    def bad_input(self) -> dict[str, int]:
        return dict(self._throttle.counts)

    def dispatch(self, frame: bytes | bytearray, recv_ns: int) -> None:
        """Hot path, once per received message: decode once, route, never raise."""
        self.last_message_ns = recv_ns
        self.frames += 1
        self.bytes += len(frame)
        if self.recorder is not None:
            self.recorder.record(recv_ns, "in", frame)
        try:
            msg = _loads(frame)
        except _DecodeError:
            self.bad("malformed_json", frame)
            return
        if type(msg) is not dict:
            self.bad("not_an_object", frame)
            return
        if "id" in msg:
            stray = self._requests.answer(msg)
            if stray is not None:
                self.bad(stray, msg)
            return
        if msg.get("method") == self._hb_method:
            self._on_heartbeat(msg)
            return
        try:
            self._on_notification(msg, recv_ns)
        except Exception as e:
            self.handler_errors += 1
            self.bad("handler_error", repr(e))

    def bad(self, kind: str, sample: Any) -> None:
        """Count one piece of bad input of `kind`; log and report it unless throttled."""
        suppressed = self._throttle.hit(kind, time.monotonic())
        if suppressed is None:
            return
        count = self._throttle.counts[kind]
        logger.warning(
            "bad input from %s: %s (%d so far, %d not logged): %.200r",
            self._url,
            kind,
            count,
            suppressed,
            sample,
        )
        self._emit("bad_input", kind=kind, count=count, suppressed=suppressed)
