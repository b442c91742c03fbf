"""What `feeder mirror` and `feeder replicate` share: NATS flags, the run loop, `status`."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol, TypeVar

from feeder.bridge.natsconn import ENV, NatsConfig
from feeder.bridge.status import read_status
from feeder.errors import FeederError, UsageError
from feeder.runtime import logs

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_FORCED = 0, 1, 2, 130

NATS_HELP = f"""\
NATS credentials never go on the command line: the password comes from ${ENV["password"]} or a 0600
file (--nats-password-file or ${ENV["password_file"]}); every --nats-* flag above also has a FEEDER_NATS_*
variable ({", ".join(sorted(v for k, v in ENV.items() if k != "password"))}).
exit codes: 0 stopped cleanly (signal, --duration; --check: valid), 1 could not connect or failed at run
time, 2 bad usage or configuration (the message names the field), 130 a second signal forced the exit.
"""


def add_nats_flags(p: argparse.ArgumentParser) -> None:
    a = p.add_argument
    a(
        "--nats",
        required=True,
        metavar="URL",
        help="NATS server(s): nats://host:4222 or tls://..., comma-separated",
    )
    a("--nats-user", metavar="USER", help="user name (the password from the environment or a file)")
    a("--nats-password-file", metavar="FILE", help="0600 file holding the password")
    a("--nats-nkey", metavar="SEEDFILE", help="0600 nkey seed file (needs the nkeys package: feeder[nats])")
    a("--nats-creds", metavar="FILE", help="0600 .creds file (user JWT and nkey seed)")
    a("--nats-tls-ca", metavar="FILE", help="CA certificate(s) to trust for tls:// servers")
    a("--nats-tls-cert", metavar="FILE", help="client certificate (with --nats-tls-key)")
    a("--nats-tls-key", metavar="FILE", help="0600 client key")
    a("--instance", help="feeder instance namespace of the local rings (default $FEEDER_INSTANCE or default)")
    a("--rings", default="*", metavar="GLOBS", help="rings to carry, comma-separated globs (default: all)")
    a(
        "--connect-timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="give up if NATS is not there by then (default 60)",
    )
    a("--duration", type=float, metavar="S", help="stop after S seconds (default: run until a signal)")
    a("--log-level", choices=("debug", "info", "warning", "error"), default="info")
    a("--check", action="store_true", help="validate the arguments, print the plan as JSON and exit")


def nats_config(ns: argparse.Namespace) -> NatsConfig:
    return NatsConfig.from_env(
        ns.nats,
        user=ns.nats_user,
        password_file=ns.nats_password_file,
        nkey_seed_file=ns.nats_nkey,
        creds_file=ns.nats_creds,
        tls_ca=ns.nats_tls_ca,
        tls_cert=ns.nats_tls_cert,
        tls_key=ns.nats_tls_key,
    )


def run(
    name: str, body: Callable[[asyncio.Event], Awaitable[None]], duration: float | None, level: str
) -> int:
    """Run `body(stop)` on uvloop until SIGINT/SIGTERM or `duration`; a second signal exits at once."""
    logs.configure(level)

    async def main() -> None:
        stop = asyncio.Event()
        signals = 0

        def on_signal() -> None:
            nonlocal signals
            signals += 1
            if signals > 1:
                os._exit(EXIT_FORCED)
            stop.set()

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        if duration is not None:
            loop.call_later(duration, stop.set)
        await body(stop)

    runner: Callable[[Coroutine[Any, Any, None]], None]
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    try:
        runner(main())
    except UsageError as exc:
        print(f"feeder {name}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except FeederError as exc:
        print(f"feeder {name}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


class Bridge(Protocol):
    async def connect(self, timeout: float) -> None: ...
    async def run(self, stop: asyncio.Event) -> None: ...


class BridgeConfig(Protocol):
    @property
    def instance(self) -> str: ...


C = TypeVar("C", bound=BridgeConfig)


def bridge_main(
    program: str,
    role: str,
    argv: list[str],
    parser: argparse.ArgumentParser,
    configure: Callable[[argparse.Namespace], C],
    plan: Callable[[C], dict[str, Any]],
    make: Callable[[C], Bridge],
) -> int:
    """What `feeder mirror` and `feeder replicate` share: `status`, the flags into a config (exit 2 on a bad
    one), `--check`, then the bridge under its role lock until stopped."""
    if argv[:1] == ["status"]:
        return status_main(program, argv[1:])
    ns = parser.parse_args(argv)
    try:
        config = configure(ns)
    except UsageError as exc:
        print(f"feeder {program}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if ns.check:
        print(json.dumps(plan(config), indent=2))
        return 0

    async def body(stop: asyncio.Event) -> None:
        from feeder.bridge.status import RoleLock

        lock = RoleLock(role, config.instance)
        bridge = make(config)
        try:
            await bridge.connect(ns.connect_timeout)
            await bridge.run(stop)
        finally:
            lock.release()

    return run(program, body, ns.duration, ns.log_level)


def status_main(role: str, argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog=f"feeder {role} status", description=f"What the {role} of an instance does."
    )
    p.add_argument("--instance", help="instance namespace (default $FEEDER_INSTANCE or default)")
    p.add_argument("--json", action="store_true", help="the whole status file")
    ns = p.parse_args(argv)
    try:
        status = read_status("mirror" if role == "mirror" else "replica", ns.instance)
    except UsageError as exc:
        print(f"feeder {role} status: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps(status, indent=2) if ns.json else render(status))
    return EXIT_OK


COLUMNS = (
    "RING",
    "STATE",
    "RECORDS",
    "BYTES",
    "BATCHES",
    "LOST",
    "GAPS",
    "REPAIRED",
    "POSITION",
    "LAG_SEQ",
    "LAG_US",
)


def render(status: dict[str, Any]) -> str:
    age = (time.time_ns() - status.get("updated_ns", 0)) / 1e9
    state = "running" if status["running"] and age < 5 else "not running"
    lines = [
        f"{status['role']} of instance {status['instance']!r}, source {status['source']!r}, pid {status['pid']} "
        f"({state}; updated {age:.1f} s ago), NATS {status['nats']} "
        f"{'connected' if status['connected'] else 'disconnected'}, reconnects {status['reconnects']}, "
        f"errors {status['errors']}"
    ]
    rows = [COLUMNS]
    for name, r in sorted(status["rings"].items()):
        lag = "-" if r["lag_us_last"] is None else f"{r['lag_us_last']:.0f}"
        rows.append(
            (name, r["state"], str(r["records"]), str(r["bytes"]), str(r["batches"]), str(r["lost"]),
             str(r["gaps"]), str(r["repaired"]), str(r["position"]), str(r["lag_seq"]), lag)
        )  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)
