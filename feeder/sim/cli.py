"""`python -m feeder.sim`: serve the simulator, or send it a control command.

    python -m feeder.sim --port 8765 --instruments BTC-PERPETUAL,ETH-PERPETUAL --rate 5000
    python -m feeder.sim --instruments 1000 --rate 50000 --no-rate-limits
    python -m feeder.sim --instruments 'BTC-*' --option-expiries all --option-strikes all --clock-speed 60
    python -m feeder.sim control --port 8765 fault gap instrument=BTC-PERPETUAL
    python -m feeder.sim control --port 8765 truth BTC-PERPETUAL 1234567890
    python -m feeder.sim control --port 8765 advance to=expiry

Control arguments: positional values fill the command's leading parameters in order, `key=value`
pairs name them; values are read as JSON when they parse (numbers, true, lists), else as strings.
The answer is printed as JSON; exit status 1 when the simulator refused the command.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import os
import signal
import sys
import tempfile
import time
from datetime import datetime
from typing import Any

import orjson

from feeder.errors import ConfigError, SimControlError
from feeder.sim.config import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, SimConfig

# leading positional parameters of control commands
POSITIONAL = {
    "fault": ("name",),
    "truth": ("instrument", "change_id"),
    "sent": ("channel",),
    "publish": ("n", "instrument"),
    "set_rate": ("rate",),
    "inject": ("message", "conn"),
    "disconnect": ("conn", "how", "code", "reason"),
    "received": ("since",),
    "advance": ("seconds",),
    "clock": ("speed",),
    "list": ("instrument",),
    "expire": ("expiry",),
    "delist": ("instrument",),
    "truths": ("books",),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "control":
        return control_main(argv[1:])
    if argv and argv[0] == "serve":
        argv = argv[1:]
    return serve_main(argv)


# --- serve --------------------------------------------------------------------------------------


def _serve_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m feeder.sim", description="Local Deribit API v2 simulator.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765, help="0 picks a free port (default 8765)")
    p.add_argument(
        "--instruments",
        default=None,
        help="comma-separated names and glob patterns (BTC-*-C) that move, or a count N of instruments",
    )
    p.add_argument("--rate", type=float, default=1000.0, help="book updates per second across instruments")
    p.add_argument(
        "--option-expiries",
        default="3",
        help="the nearest N option expiries per currency, or 'all' (Deribit's)",
    )
    p.add_argument(
        "--option-strikes",
        default="9",
        help="strikes per expiry nearest the money, or 'all' (Deribit's width)",
    )
    p.add_argument(
        "--clock-speed", type=float, default=1.0, help="simulated seconds per second (expiries sooner)"
    )
    p.add_argument(
        "--start-time",
        default=None,
        help="the exchange clock at start: ISO 8601 (2026-12-02T07:59:00Z) or ms",
    )
    p.add_argument(
        "--settlement-grace", type=float, default=1.0, help="seconds from settled or closed to terminated"
    )
    p.add_argument(
        "--instrument-states",
        choices=("classic", "book"),
        default="classic",
        help="instrument.state names: classic (the vendored spec's) or book (Deribit's since January 2026)",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--no-rate-limits", action="store_true", help="switch Deribit's credit limits off")
    p.add_argument("--min-heartbeat", type=float, default=10.0, help="minimum set_heartbeat interval, s")
    p.add_argument("--token-ttl", type=float, default=900.0, help="access token lifetime, s")
    p.add_argument("--truth-log", default=None, help="append the ground-truth log to this file")
    p.add_argument("--truth-window", type=int, default=200_000, help="book changes kept in memory")
    p.add_argument("--tls", action="store_true", help="serve wss:// and https:// (self-signed certificate)")
    p.add_argument("--summary-interval", type=float, default=10.0, help="seconds between summaries; 0: none")
    p.add_argument("--quiet", action="store_true", help="print nothing")
    p.add_argument(
        "--check", action="store_true", help="validate the options, print the config as JSON, exit"
    )
    p.add_argument("--config-stdin", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--ready-fd", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--lifeline-fd", type=int, default=None, help=argparse.SUPPRESS)
    return p


def _config(args: argparse.Namespace) -> SimConfig:
    if args.config_stdin:
        return SimConfig.from_json(orjson.loads(sys.stdin.buffer.read()))
    instruments: Any = SimConfig.instruments
    if args.instruments:
        text = args.instruments.strip()
        instruments = int(text) if text.isdigit() else tuple(n.strip() for n in text.split(",") if n.strip())
    return SimConfig(
        host=args.host,
        port=args.port,
        instruments=instruments,
        rate=args.rate,
        option_expiries=_count_or_all("option_expiries", args.option_expiries),
        option_strikes=_count_or_all("option_strikes", args.option_strikes),
        clock_speed=args.clock_speed,
        start_ms=_start_ms(args.start_time),
        settlement_grace=args.settlement_grace,
        instrument_states=args.instrument_states,
        seed=args.seed,
        rate_limits=not args.no_rate_limits,
        min_heartbeat_interval=args.min_heartbeat,
        token_ttl=args.token_ttl,
        truth_log=args.truth_log,
        truth_window=args.truth_window,
        tls=args.tls,
    )


def _count_or_all(name: str, text: str) -> int | None:
    if text == "all":
        return None
    if not text.isdigit():
        raise ConfigError(name, text, "expected a positive integer or 'all'")
    return int(text)


def _start_ms(text: str | None) -> int | None:
    if text is None:
        return None
    if text.isdigit():
        return int(text)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            "start_time", text, "expected ISO 8601 such as 2026-12-02T07:59:00Z, or ms"
        ) from None
    if when.tzinfo is None:
        raise ConfigError("start_time", text, "give a time zone (Z for UTC)")
    return int(when.timestamp() * 1000)


def serve_main(argv: list[str]) -> int:
    args = _serve_parser().parse_args(argv)
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 <pid>` prints every thread's stack to stderr
    try:
        config = _config(args)
    except ConfigError as err:
        print(f"feeder.sim: {err}", file=sys.stderr)
        return 2
    if args.check:
        from feeder.sim.catalogue import build_catalogue
        from feeder.sim.clock import SimClock, wall_ms

        try:
            now = SimClock(config.start_ms, config.clock_speed, wall_ms()).now(wall_ms())
            catalogue = build_catalogue(config.instruments, now, config.chain)
        except ConfigError as err:
            print(f"feeder.sim: {err}", file=sys.stderr)
            return 2
        plan = {k: v for k, v in config.to_json().items() if k != "credentials"}
        plan.update(listed=len(catalogue.live), moving=len(catalogue.active))
        print(orjson.dumps({"ok": True, **plan}, option=orjson.OPT_INDENT_2).decode())
        return 0
    run = asyncio.run
    with contextlib.suppress(ImportError):
        import uvloop

        run = uvloop.run
    try:
        with (
            tempfile.TemporaryDirectory(prefix="feeder-sim-") as directory,
            contextlib.suppress(KeyboardInterrupt),
        ):
            run(_serve(config.with_certificate(directory), args))
    except (ConfigError, OSError) as err:
        print(f"feeder.sim: {err}", file=sys.stderr)
        return 2
    return 0


async def _serve(config: SimConfig, args: argparse.Namespace) -> None:
    from feeder.sim.control import info, stats
    from feeder.sim.server import SimApp

    app = SimApp(config)
    port = await app.start()
    loop = asyncio.get_running_loop()
    stopping: set[asyncio.Future[None]] = set()  # keeps the stop task referenced until it is done
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: stopping.add(asyncio.ensure_future(app.stop())))
    if args.lifeline_fd is not None:
        fd = args.lifeline_fd

        def parent_gone() -> None:
            loop.remove_reader(fd)
            stopping.add(asyncio.ensure_future(app.stop()))

        loop.add_reader(fd, parent_gone)
    if not args.quiet:
        _announce(info(app))
    if args.ready_fd is not None:
        os.write(args.ready_fd, orjson.dumps({"port": port, "pid": os.getpid()}) + b"\n")
        os.close(args.ready_fd)
    summary = None
    if not args.quiet and args.summary_interval > 0:
        summary = loop.create_task(_summaries(app, args.summary_interval, stats))
    await app.stopped.wait()
    if summary is not None:
        summary.cancel()


def _announce(i: dict[str, Any]) -> None:
    active = ", ".join(i["active"][:10]) + (f" ... ({len(i['active'])})" if len(i["active"]) > 10 else "")
    trust = f"\n  TLS: trust {i['tls_cert']} (SSL_CERT_FILE / REQUESTS_CA_BUNDLE)" if i["tls_cert"] else ""
    print(
        f"feeder.sim serving {i['ws_url']} and {i['http_url']} (control: same port, /sim/control){trust}\n"
        f"  {i['instrument_count']} instruments listed; {i['rate']:g} book updates/s over: {active}\n"
        f"  rate limits {'on' if i['rate_limits'] else 'off'}; demo credentials "
        f"client_id={DEMO_CLIENT_ID} client_secret={DEMO_CLIENT_SECRET}",
        flush=True,
    )


async def _summaries(app: Any, every: float, stats: Any) -> None:
    last, last_t = 0, time.monotonic()
    while True:
        await asyncio.sleep(every)
        s = stats(app)
        now = time.monotonic()
        rate = (s["changes_total"] - last) / (now - last_t)
        last, last_t = s["changes_total"], now
        print(
            f"[sim] {rate:,.0f} changes/s, {s['connections']} connections, "
            f"{sum(s['published'].values()):,} notifications, lagged {s['lagged_updates']:,}, "
            f"faults {sum(s['faults'].values())}",
            flush=True,
        )


# --- control ------------------------------------------------------------------------------------


def control_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m feeder.sim control", description="Send a control command.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--tls-cert", default=None, help="the simulator's certificate when it serves TLS")
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("command")
    p.add_argument("args", nargs="*", help="positional values and key=value pairs")
    args = p.parse_args(argv)
    try:
        params = _control_args(args.command, args.args)
    except ValueError as err:
        print(f"control: {err}", file=sys.stderr)
        return 2
    from websockets.sync.client import connect

    from feeder.sim.tls import client_context

    scheme, tls = ("wss", client_context(args.tls_cert)) if args.tls_cert else ("ws", None)
    try:
        with connect(
            f"{scheme}://{args.host}:{args.port}/sim/control",
            open_timeout=args.timeout,
            max_size=None,
            ssl=tls,
        ) as ws:
            ws.send(orjson.dumps({"id": 1, "cmd": args.command, "args": params}).decode())
            answer = orjson.loads(ws.recv(timeout=args.timeout))
    except (OSError, TimeoutError) as err:
        print(f"control: cannot reach the simulator at {args.host}:{args.port}: {err}", file=sys.stderr)
        return 1
    if not answer.get("ok"):
        print(f"control: {SimControlError(answer.get('error'))}", file=sys.stderr)
        return 1
    print(orjson.dumps(answer["result"], option=orjson.OPT_INDENT_2).decode())
    return 0


def _control_args(command: str, raw: list[str]) -> dict[str, Any]:
    names = POSITIONAL.get(command, ())
    out: dict[str, Any] = {}
    position = 0
    for item in raw:
        key, eq, value = item.partition("=")
        if eq and key.isidentifier():
            out[key] = _value(value)
            continue
        if position >= len(names):
            raise ValueError(f"{command} takes at most {len(names)} positional values ({', '.join(names)})")
        out[names[position]] = _value(item)
        position += 1
    return out


def _value(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
