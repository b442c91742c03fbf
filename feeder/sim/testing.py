"""`SimServer`: run the exchange simulator in its own process and drive it from this one.

The simulator gets its own process (and event loop), so a slow test never hides a slow server and
vice versa. Startup is waited on through a pipe the child writes its port to once it listens (no
sleeping); a second pipe is the child's lifeline: if this process dies, the child sees EOF and
stops. `stop()` / `__exit__` shut it down and reap it, also after a failed test.

    with SimServer(instruments=["BTC-PERPETUAL"], rate=0, seed=7) as sim:
        ws = connect(sim.ws_url)
        ...
        sim.publish(10)
        sim.fault("gap", instrument="BTC-PERPETUAL")
        sim.truth("BTC-PERPETUAL", change_id)

Control commands travel over a WebSocket at /sim/control (see control.py); every method here is a
thin wrapper and raises `SimControlError` when the simulator refuses a command.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from websockets.exceptions import InvalidHandshake
from websockets.sync.client import ClientConnection, connect

from feeder.errors import SimControlError, UsageError
from feeder.sim.catalogue import build_catalogue
from feeder.sim.clock import SimClock, wall_ms
from feeder.sim.config import SimConfig
from feeder.sim.tls import client_context

Match = str | re.Pattern[str] | dict[str, Any] | Callable[[Any], Any]
T = TypeVar("T")
TRUTHS_PER_REQUEST = 20_000


@dataclass(frozen=True)
class Sent:
    """A message a client sent to the simulator (secret fields of public/auth redacted)."""

    seq: int
    conn: int
    text: str
    ts_ns: int
    message: Any  # the parsed JSON, None when the text is not JSON


class SimServer:
    """The simulator in a child process; a context manager, or start()/stop()."""

    def __init__(
        self, config: SimConfig | None = None, /, *, startup_timeout: float = 60.0, **overrides: Any
    ):
        if config is not None and overrides:
            raise UsageError("give SimServer either a SimConfig or keyword overrides, not both")
        config = config if config is not None else SimConfig(**overrides)
        clock = SimClock(config.start_ms, config.clock_speed, wall_ms())
        build_catalogue(config.instruments, clock.now(wall_ms()), config.chain)  # bad names fail here
        self._base_config = self.config = config
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self.startup_timeout = startup_timeout
        self.port: int | None = None
        self.pid: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._lifeline: int | None = None
        self._control: ClientConnection | None = None
        self._exits = contextlib.ExitStack()
        self._lock = threading.Lock()
        self._next_id = 0

    def __repr__(self) -> str:
        return f"SimServer(port={self.port}, pid={self.pid}, instruments={self.config.instruments!r})"

    # --- lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> SimServer:
        if self._proc is not None:
            raise UsageError("this SimServer is already running")
        if self._base_config.tls and self._base_config.tls_cert is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix="feeder-sim-")
            self.config = self._base_config.with_certificate(self._tempdir.name)
        ready_r, ready_w = os.pipe()
        life_r, life_w = os.pipe()
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "feeder.sim", "serve", "--config-stdin", "--quiet",
                 "--ready-fd", str(ready_w), "--lifeline-fd", str(life_r)],
                stdin=subprocess.PIPE, pass_fds=(ready_w, life_r), start_new_session=True,
            )  # fmt: skip
            os.close(ready_w)
            os.close(life_r)
            self._lifeline = life_w
            assert self._proc.stdin is not None
            self._proc.stdin.write(orjson.dumps(self.config.to_json()))
            self._proc.stdin.close()
            ready = self._wait_ready(ready_r)
        except BaseException:
            self.stop()
            raise
        finally:
            os.close(ready_r)
        self.port, self.pid = ready["port"], ready["pid"]
        tls = client_context(self.tls_cert) if self.tls_cert else None
        try:
            self._control = self._exits.enter_context(
                connect(self.control_url, open_timeout=self.startup_timeout, max_size=None, ssl=tls)
            )
        except (OSError, TimeoutError, InvalidHandshake) as err:
            self._dump_stacks()
            self.stop()
            raise UsageError(
                f"the simulator (pid {self.pid}) listens but its control channel failed: {err!r}"
            ) from err
        return self

    def _dump_stacks(self) -> None:
        """Ask a stuck simulator for its stacks (faulthandler prints them on its stderr at once)."""
        if self.pid is not None and self.running:
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.SIGUSR1)

    def _wait_ready(self, fd: int) -> dict[str, Any]:
        deadline = time.monotonic() + self.startup_timeout
        data = b""
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"the simulator did not start within {self.startup_timeout:g} s")
            readable, _, _ = select.select([fd], [], [], left)
            if readable:
                chunk = os.read(fd, 4096)
                if not chunk:
                    assert self._proc is not None
                    code = self._proc.wait(timeout=10)
                    raise UsageError(
                        f"the simulator exited during startup (exit code {code}); see its stderr"
                    )
                data += chunk
        ready: dict[str, Any] = orjson.loads(data)  # the simulator's one line about itself
        return ready

    def stop(self) -> None:
        """Stop the simulator and reap it (idempotent; kills it if it does not stop in time)."""
        proc, self._proc = self._proc, None
        if self._control is not None:
            with contextlib.suppress(Exception):
                self._call("shutdown", {})
            with contextlib.suppress(Exception):
                self._exits.close()
            self._control = None
        if self._lifeline is not None:
            os.close(self._lifeline)
            self._lifeline = None
        if proc is not None:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir, self.config = None, self._base_config

    @property
    def tls_cert(self) -> str | None:
        """With tls=True: the certificate file clients must trust (SSL_CERT_FILE, REQUESTS_CA_BUNDLE)."""
        return self.config.tls_cert

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # --- addresses ---------------------------------------------------------------------------------

    def _url(self, scheme: str, path: str) -> str:
        if self.port is None:
            raise UsageError("the SimServer is not started")
        return f"{scheme}://{self.config.host}:{self.port}{path}"

    @property
    def ws_url(self) -> str:
        return self._url(self.config.scheme[0], "/ws/api/v2")

    @property
    def http_url(self) -> str:
        return self._url(self.config.scheme[1], "/api/v2")

    @property
    def control_url(self) -> str:
        return self._url(self.config.scheme[0], "/sim/control")

    # --- control -----------------------------------------------------------------------------------

    def _call(self, cmd: str, args: dict[str, Any]) -> Any:
        if self._control is None:
            raise UsageError("the SimServer is not started")
        with self._lock:
            self._next_id += 1
            self._control.send(orjson.dumps({"id": self._next_id, "cmd": cmd, "args": args}).decode())
            answer = orjson.loads(self._control.recv())
        if not answer.get("ok"):
            raise SimControlError(answer.get("error", f"control command {cmd} failed"))
        return answer["result"]

    def control(self, cmd: str, **args: Any) -> Any:
        """Any control command by name (see control.py)."""
        return self._call(cmd, {k: v for k, v in args.items() if v is not None})

    def _answer(self, kind: type[T], cmd: str, **args: Any) -> T:
        """`control(cmd, **args)`, whose result must be a `kind` (a JSON object or array)."""
        result = self.control(cmd, **args)
        if not isinstance(result, kind):
            raise SimControlError(f"control command {cmd} answered {result!r:.100}, not a {kind.__name__}")
        return result

    def info(self) -> dict[str, Any]:
        return self._answer(dict, "info")

    def instruments(self) -> list[str]:
        return self._answer(list, "instruments")

    def stats(self) -> dict[str, Any]:
        """Published counts per channel, subscribers, connections, faults applied, changes, lag."""
        return self._answer(dict, "stats")

    def fault(self, name: str, **params: Any) -> dict[str, Any]:
        """Inject a fault by name (see faults.py for the catalogue and params)."""
        return self._answer(dict, "fault", name=name, **params)

    def truth(self, instrument: str, change_id: int) -> dict[str, Any]:
        """The true top-10 book after `change_id`: {"bids": [[px, amt]...], "asks": [...], "hash": int}."""
        return self._answer(dict, "truth", instrument=instrument, change_id=change_id)

    def truth_many(self, instrument: str, change_ids: list[int]) -> list[dict[str, Any]]:
        return self._answer(list, "truth", instrument=instrument, change_id=list(change_ids))

    def truths(self, books: dict[str, list[int]]) -> dict[str, list[dict[str, Any]]]:
        """Truths of many instruments at once: {instrument: [change_id...]} -> {instrument: [book...]}.

        Sent in requests of at most TRUTHS_PER_REQUEST change_ids (the simulator reads messages of
        up to 1 MiB)."""
        out: dict[str, list[dict[str, Any]]] = {}
        batch: dict[str, list[int]] = {}
        size = 0
        for name, ids in books.items():
            batch.setdefault(name, [])
            for start in range(0, len(ids), TRUTHS_PER_REQUEST):
                part = list(ids[start : start + TRUTHS_PER_REQUEST])
                if size + len(part) > TRUTHS_PER_REQUEST:
                    self._merge(out, self._answer(dict, "truths", books=batch))
                    batch, size = {}, 0
                batch.setdefault(name, []).extend(part)
                size += len(part)
        if batch:
            self._merge(out, self._answer(dict, "truths", books=batch))
        return out

    @staticmethod
    def _merge(out: dict[str, list[dict[str, Any]]], part: dict[str, list[dict[str, Any]]]) -> None:
        for name, found in part.items():
            out.setdefault(name, []).extend(found)

    # --- the exchange clock and listings (lifecycle.py) ---------------------------------------------

    def clock(self, speed: float | None = None) -> dict[str, Any]:
        """{"now_ms", "speed", "next_expiry_ms"}; `speed` sets how fast the exchange clock runs."""
        return self._answer(dict, "clock", speed=speed)

    def advance(self, seconds: float | None = None, to: str | None = None) -> dict[str, Any]:
        """Jump the exchange clock (`seconds`, or to="expiry"): {"now_ms", "settled": [...], "listed": [...]}.

        What fell due happens at once (settlements, listings); terminations follow the grace period."""
        return self._answer(dict, "advance", seconds=seconds, to=to)

    def list_instrument(self, name: str | list[str]) -> dict[str, Any]:
        """List new instruments now (created, then started)."""
        return self._answer(dict, "list", instrument=name)

    def expire(self, expiry: str | None = None, instrument: str | None = None) -> dict[str, Any]:
        """Settle an expiry (date code such as 4DEC26) or one instrument now."""
        return self._answer(dict, "expire", expiry=expiry, instrument=instrument)

    def delist(self, name: str) -> dict[str, Any]:
        """Close an instrument now (closed, then terminated)."""
        return self._answer(dict, "delist", instrument=name)

    def lock(self, currency: str, seconds: float | None = None) -> dict[str, Any]:
        """Lock a currency (platform_state), until unlock() or for `seconds`."""
        return self.fault("lock", currency=currency, seconds=seconds)

    def unlock(self, currency: str) -> dict[str, Any]:
        return self.fault("unlock", currency=currency)

    def sent(self, channel: str) -> list[list[int]]:
        """Recent book notifications on `channel`: [change_id, prev_change_id, send_ns] each."""
        return self._answer(list, "sent", channel=channel)

    def publish(self, n: int = 1, instrument: str | None = None) -> dict[str, Any]:
        """Publish exactly n book changes now: {"count": n, "last": {instrument: change_id}}."""
        return self._answer(dict, "publish", n=n, instrument=instrument)

    def set_rate(self, rate: float) -> float:
        rate_now: float = self._call("set_rate", {"rate": rate})
        return rate_now

    def inject(self, message: Any, conn: int | None = None, client: str | None = None) -> list[int]:
        """Send a message into client streams: a str verbatim, anything else as JSON."""
        conns: list[int] = self._answer(dict, "inject", message=message, conn=conn, client=client)["conns"]
        return conns

    def connections(self) -> list[dict[str, Any]]:
        return self._answer(list, "connections")

    def disconnect(
        self,
        conn: int | None = None,
        how: str = "close",
        code: int = 1000,
        reason: str = "",
        client: str | None = None,
    ) -> list[int]:
        """Close (with `code`) or reset one connection (`conn`, or those of `client`: a glob of the
        public/hello client_name), or all."""
        found = self._answer(dict, "disconnect", conn=conn, how=how, code=code, reason=reason, client=client)
        conns: list[int] = found["conns"]
        return conns

    def received(self, since: int = 1, conn: int | None = None) -> list[Sent]:
        """Messages clients sent (most recent 10 000), oldest first."""
        answer = self.control("received", since=since, conn=conn)
        return [_sent(m) for m in answer["messages"]]

    def wait_sent(self, match: Match, timeout: float = 10.0, conn: int | None = None, since: int = 1) -> Sent:
        """The first message a client sent that matches; AssertionError after `timeout` s.

        `match` is the exact text (str), a compiled regex (searched), a dict (partial JSON: every
        key present with an equal value, recursively) or a predicate called with the parsed JSON
        (the text when it is not JSON; an exception counts as no match).
        """
        deadline = time.monotonic() + timeout
        seen: list[Sent] = []
        while True:
            left = deadline - time.monotonic()
            answer = self.control("received", since=since, timeout=max(0.0, min(left, 1.0)), conn=conn)
            for raw in answer["messages"]:
                sent = _sent(raw)
                if _matches(match, sent):
                    return sent
                seen.append(sent)
            since = answer["next"]
            if time.monotonic() >= deadline:
                last = "\n  ".join(s.text[:200] for s in seen[-5:]) or "(nothing)"
                raise AssertionError(
                    f"no client message matched {match!r} within {timeout:g} s; last seen:\n  {last}"
                )


def _sent(raw: dict[str, Any]) -> Sent:
    try:
        message = orjson.loads(raw["text"])
    except orjson.JSONDecodeError:
        message = None
    return Sent(raw["seq"], raw["conn"], raw["text"], raw["ts_ns"], message)


def _matches(match: Match, sent: Sent) -> bool:
    if isinstance(match, str):
        return sent.text == match
    if isinstance(match, re.Pattern):
        return match.search(sent.text) is not None
    if isinstance(match, dict):
        return _partial(match, sent.message)
    try:
        return bool(match(sent.message if sent.message is not None else sent.text))
    except Exception:
        return False


def _partial(expected: Any, actual: Any) -> bool:
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and _partial(v, actual[k]) for k, v in expected.items()
        )
    same: bool = expected == actual  # JSON values
    return same
