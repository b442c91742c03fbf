"""The control channel: JSON commands over a WebSocket at /sim/control, served inside the simulator.

Request `{"id": 1, "cmd": "fault", "args": {"name": "gap", "instrument": "BTC-PERPETUAL"}}`, answer
`{"id": 1, "ok": true, "result": ...}` or `{"id": 1, "ok": false, "error": "<what was wrong>"}`.
Commands: info, instruments, stats, truth, truths, sent, publish, set_rate, fault, inject,
received, connections, disconnect, shutdown (`conn` or `client`, a glob of the public/hello client_name,
say which connections a command acts on), and for the exchange's clock and listings (see
lifecycle.py): clock (the time, the next expiry; `speed` changes how fast it runs), advance
(`seconds`, or `to="expiry"`: jump to the next expiry, which settles at once), list (a new
instrument by name), expire (an expiry by its date code, or one instrument, settled now), delist
(closed now). `SimServer` (testing.py) and `python -m feeder.sim control` are the two clients.
"""

from __future__ import annotations

import asyncio
import fnmatch
import inspect
import math
import os
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from feeder.errors import SimControlError
from feeder.sim import faults
from feeder.sim.control_lifecycle import LIFECYCLE_COMMANDS, instrument_index
from feeder.sim.session import Session, text_frame
from feeder.sim.truth import TruthError

if TYPE_CHECKING:
    from feeder.sim.server import SimApp


async def serve_control(app: SimApp, conn: ServerConnection) -> None:
    try:
        async for message in conn:
            await conn.send(orjson.dumps(await _answer(app, message)).decode())
    except ConnectionClosed:
        pass


async def _answer(app: SimApp, message: str | bytes) -> dict[str, Any]:
    try:
        req = orjson.loads(message)
        rid, cmd, args = req.get("id"), req["cmd"], req.get("args") or {}
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return {
            "id": None,
            "ok": False,
            "error": 'a control request is {"id": n, "cmd": name, "args": {...}}',
        }
    try:
        command = COMMANDS.get(cmd)
        if command is None:
            raise SimControlError(f"unknown control command {cmd!r}; known: {', '.join(sorted(COMMANDS))}")
        _check_args(cmd, command, args)
        result = command(app, **args)
        if inspect.isawaitable(result):
            result = await result
        return {"id": rid, "ok": True, "result": result}
    except (SimControlError, TruthError) as err:
        return {"id": rid, "ok": False, "error": str(err)}


def _check_args(cmd: str, command: Callable[..., Any], args: Any) -> None:
    if not isinstance(args, dict):
        raise SimControlError(f"{cmd}: args must be an object")
    params = inspect.signature(command).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    unknown = set(args) - set(list(params)[1:])
    if unknown:
        raise SimControlError(f"{cmd} takes {list(params)[1:]}, not {sorted(unknown)}")


# --- commands -----------------------------------------------------------------------------------


def info(app: SimApp) -> dict[str, Any]:
    cfg = app.config
    ws, http = cfg.scheme
    return {
        "pid": os.getpid(),
        "port": app.port,
        "ws_url": f"{ws}://{cfg.host}:{app.port}/ws/api/v2",
        "http_url": f"{http}://{cfg.host}:{app.port}/api/v2",
        "tls_cert": cfg.tls_cert,
        "active": [st.inst.name for st in app.market.active],
        "instrument_count": len(app.catalogue.live),
        "now_ms": app.hub.now_ms(),
        "clock_speed": app.clock.speed,
        "rate": app.rate,
        "seed": cfg.seed,
        "rate_limits": cfg.rate_limits,
        "min_heartbeat_interval": cfg.min_heartbeat_interval,
        "token_ttl": cfg.token_ttl,
    }


def instruments(app: SimApp) -> list[str]:
    """Every listed instrument that is not terminated."""
    return list(app.catalogue.live)


def stats(app: SimApp) -> dict[str, Any]:
    hub = app.hub
    out = hub.stats()
    out.update(
        changes={st.inst.name: st.changes for st in app.market.states if st.changes},
        changes_total=app.market.changes,
        rate=app.rate,
        uptime_s=round((time.time_ns() - app.started_ns) / 1e9, 3),
        lagged_updates=app.lagged,
        batches=app.batches,
        faults={k: v for k, v in hub.counters.items() if k.startswith("fault_")},
        open_orders=sum(1 for o in app.market.orders.values() if o.state == "open"),
        traded={st.inst.name: st.inst.amt(st.volume_lots) for st in app.market.states if st.volume_lots},
        trade_seq={st.inst.name: st.trade_seq for st in app.market.states if st.trade_seq},
    )
    return out


def _change_ids(cmd: str, change_id: Any) -> list[int]:
    ids = change_id if isinstance(change_id, list) else [change_id]
    if not ids or not all(isinstance(c, int) and not isinstance(c, bool) for c in ids):
        raise SimControlError(f"{cmd}: change_id must be an integer or a list of integers, got {change_id!r}")
    return ids


def truth(app: SimApp, instrument: str, change_id: int | list[int]) -> dict[str, Any] | list[dict[str, Any]]:
    ids = _change_ids("truth", change_id)
    books = {b["change_id"]: b for b in app.market.truth(instrument_index(app, instrument), ids)}
    return [books[c] for c in ids] if isinstance(change_id, list) else books[change_id]


def truths(app: SimApp, books: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The truth of many instruments at once: {instrument: [change_id, ...]} -> {instrument: [book, ...]}."""
    if not isinstance(books, dict):
        raise SimControlError("truths: books must be an object {instrument: [change_id, ...]}")
    out: dict[str, list[dict[str, Any]]] = {}
    for name, change_ids in books.items():
        if change_ids == []:
            out[name] = []
            continue
        ids = _change_ids("truths", change_ids)
        found = {b["change_id"]: b for b in app.market.truth(instrument_index(app, name), ids)}
        out[name] = [found[c] for c in ids]
    return out


def sent(app: SimApp, channel: str) -> list[list[int]]:
    return app.hub.sent_log(channel)


def publish(app: SimApp, n: int = 1, instrument: str | None = None) -> dict[str, Any]:
    if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= 1_000_000:
        raise SimControlError(f"publish: n must be an integer 0..1000000, got {n!r}")
    only = instrument_index(app, instrument) if instrument is not None else None
    if only is not None and not app.market.states[only].trading:
        raise SimControlError(
            f"publish: {instrument} is {app.market.states[only].status}, its book does not move"
        )
    changes = app.publish_now(n, only)
    last = {}
    for change in changes:
        last[app.market.states[change.inst].inst.name] = change.change_id
    return {"count": len(changes), "last": last}


def set_rate(app: SimApp, rate: float) -> float:
    if not isinstance(rate, int | float) or isinstance(rate, bool) or not math.isfinite(rate) or rate < 0:
        raise SimControlError(f"set_rate: rate must be a number >= 0, got {rate!r}")
    app.set_rate(rate)
    return app.rate


def _targets(app: SimApp, conn: int | None, client: str | None = None) -> list[Session]:
    """The sessions a command acts on: connection `conn`, the open ones whose public/hello client_name
    matches the glob `client`, or every open one."""
    if conn is not None:
        s = app.hub.sessions.get(conn)
        if s is None:
            raise SimControlError(f"no connection {conn!r}; open connections: {sorted(app.hub.sessions)}")
        return [s]
    open_sessions = [s for s in app.hub.sessions.values() if s.is_open]
    if client is None:
        return open_sessions
    found = [
        s for s in open_sessions if s.client_name is not None and fnmatch.fnmatchcase(s.client_name, client)
    ]
    if not found:
        names = sorted({s.client_name for s in open_sessions if s.client_name is not None})
        raise SimControlError(
            f"no open connection of client {client!r}; clients: {names or 'none said hello'}"
        )
    return found


def fault(app: SimApp, name: str, **params: Any) -> dict[str, Any]:
    p = faults.check_fault(name, params)
    app.hub.counters[f"fault_{name}"] += 1
    if name in faults.MARKET_FAULTS:
        app.hub.clock = time.monotonic()
        if name == "refuse":
            app.refuse(p["seconds"], p["how"])
        elif name == "lock":
            app.lifecycle.lock(p["currency"], p["seconds"], app.hub.clock)
        else:
            app.lifecycle.unlock(p["currency"])
        app.hub.flush()
        return {"fault": name, "conns": []}
    inst = instrument_index(app, p["instrument"]) if p.get("instrument") is not None else None
    targets = _targets(app, p.get("conn"), p.get("client"))
    app.hub.clock = time.monotonic()
    for s in targets:
        _apply(app, s, name, p, inst)
    app.hub.flush()
    return {"fault": name, "conns": [s.id for s in targets]}


def _apply(app: SimApp, s: Session, name: str, p: dict[str, Any], inst: int | None) -> None:
    hub = app.hub
    if name == "drop":
        disconnect(app, s.id, p["how"], p["code"], p["reason"])
    elif name == "stall":
        s.stalled_until = math.inf if p["seconds"] is None else time.monotonic() + p["seconds"]
        s.stall_pongs = p["pongs"]
    elif name == "resume":
        s.stalled_until = None
    elif inst is not None:
        kinds = s.book_faults.setdefault(inst, deque())
        kinds.extend([name] * p.get("count", 1))
    elif name in ("malformed", "unknown_method", "unknown_channel", "heartbeat", "huge_frame"):
        frame = {
            "malformed": faults.MALFORMED,
            "unknown_method": faults.UNKNOWN_METHOD,
            "unknown_channel": faults.UNKNOWN_CHANNEL,
            "heartbeat": faults.HEARTBEAT,
        }.get(name) or faults.huge_frame(p["size"])
        hub.queue(s, text_frame(frame))
    elif name == "rate_limit":
        s.rate_limit_next = faults.rate_limit_fault(p)
    elif name == "delay_test_request":
        s.hb_delay, s.hb_delay_count = float(p["seconds"]), s.hb_delay_count + p["count"]
    elif name == "drop_test_request":
        s.hb_drop += p["count"]


def inject(app: SimApp, message: Any, conn: int | None = None, client: str | None = None) -> dict[str, Any]:
    """Send `message` (a string verbatim, anything else as JSON) to a connection (or all)."""
    payload = message.encode() if isinstance(message, str) else orjson.dumps(message)
    targets = _targets(app, conn, client)
    app.hub.clock = time.monotonic()
    for s in targets:
        app.hub.queue(s, text_frame(payload))
    app.hub.flush()
    return {"conns": [s.id for s in targets]}


async def received(
    app: SimApp, since: int = 1, timeout: float = 0.0, conn: int | None = None
) -> dict[str, Any]:
    """Client messages with seq >= since (waiting up to `timeout` s for one), oldest first."""
    if not isinstance(since, int) or not isinstance(timeout, int | float) or timeout < 0:
        raise SimControlError("received: since must be an integer and timeout a number >= 0")
    deadline = time.monotonic() + min(float(timeout), 30.0)
    while True:
        found = [m for m in app.received if m["seq"] >= since and conn in (None, m["conn"])]
        left = deadline - time.monotonic()
        if found or left <= 0:
            oldest = app.received[0]["seq"] if app.received else app.received_seq + 1
            return {"messages": found, "next": app.received_seq + 1, "oldest": oldest}
        await app.wait_received(app.received_seq + 1, left)


def connections(app: SimApp) -> list[dict[str, Any]]:
    return [s.describe() for s in app.hub.sessions.values()]


def disconnect(
    app: SimApp,
    conn: int | None = None,
    how: str = "close",
    code: int = 1000,
    reason: str = "",
    client: str | None = None,
) -> dict[str, Any]:
    p = faults.check_fault("drop", {"how": how, "code": code, "reason": reason})
    targets = _targets(app, conn, client)
    for s in targets:
        if p["how"] == "reset":
            app.reset_session(s)
        else:
            app.close_session(s, p["code"], p["reason"])
    return {"conns": [s.id for s in targets]}


async def shutdown(app: SimApp) -> str:
    asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(app.stop()))
    return "stopping"


COMMANDS: dict[str, Callable[..., Any]] = {
    "info": info,
    "instruments": instruments,
    "stats": stats,
    "truth": truth,
    "truths": truths,
    "sent": sent,
    "publish": publish,
    "set_rate": set_rate,
    "fault": fault,
    "inject": inject,
    "received": received,
    "connections": connections,
    "disconnect": disconnect,
    "shutdown": shutdown,
    **LIFECYCLE_COMMANDS,
}
