"""`python -m feeder [options]`: run the feeder (supervisor + workers), or `--check` the configuration."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

from feeder.errors import ConfigError, UsageError
from feeder.runtime import config as cfg
from feeder.runtime.resolve import (
    ExchangeUnavailable,
    Resolved,
    resolve,
    selection_of,
    sim_instruments,
    without_exchange,
)
from feeder.runtime.sizing import check_free, shm_size_advice

EPILOG = """\
exit codes:
  0    stopped cleanly (signal, or --duration reached); --check: the configuration is valid
  1    the feeder failed at run time (every worker gave up)
  2    bad configuration or usage (the message names the field), or the instance is already running
  130  a second SIGINT/SIGTERM forced the exit

subcommands:
  feeder status [--instance I] [--json]    show a running instance (workers, scores, rings)
  feeder rings [--instance I] [--clean]    list shared-memory rings; remove stale ones
  feeder replay DIR [--speed X|max]        replay recordings into rings
  feeder monitor RING...                   live top of book
  feeder record OUT RING...                record rings to .npy or Parquet files
  feeder recording DIR...                  verify recordings, print a summary
  feeder latency RING...                   per-stage latency percentiles
  feeder example-strategy                  example quoting strategy (orders via the feeder)

credentials: DERIBIT_CLIENT_ID and DERIBIT_CLIENT_SECRET, or DERIBIT_CREDENTIALS_FILE / --credentials-file
(a 0600 TOML file). Without them: public data only (100ms channels) and order requests are refused.
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="feeder",
        description="Market-data feeder: exchange WebSocket -> shared-memory rings, orders via FeederHandle.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    a = p.add_argument
    a("--config", metavar="FILE", help="TOML file with any of the settings below (flags override it)")
    a("--exchange", choices=cfg.EXCHANGES, help="exchange adapter (default deribit)")
    a("--workers", type=int, help="worker processes, one connection each (default 2)")
    a(
        "--instruments",
        help="comma-separated instrument names and glob patterns, e.g. BTC-PERPETUAL,BTC-*-C "
        "(default BTC-PERPETUAL,ETH-PERPETUAL unless --kind or --currency select)",
    )
    a("--kind", help="comma-separated kinds among option,future,perpetual,spot (default any)")
    a("--currency", help="comma-separated currencies such as BTC,ETH (default any)")
    a("--chains", help="comma-separated kinds whose instruments share chain rings, e.g. option")
    a("--streams", help="comma-separated streams among book,trades,ticker,markprice (default all)")
    a("--url", help="exchange WebSocket URL (default production Deribit)")
    a("--testnet", action="store_const", const=True, help="use test.deribit.com")
    a("--sim", action="store_const", const=True, help="start the embedded local exchange (no network)")
    a("--sim-rate", type=float, help="with --sim: book updates per second across instruments (default 500)")
    a("--interval", choices=("raw", "100ms"), help="Deribit channel interval (default raw with credentials)")
    a("--cpus", help="comma-separated CPUs to pin workers to, round robin (default: all allowed)")
    a(
        "--busy-poll",
        action="store_const",
        const=True,
        help="workers poll their socket without sleeping: lower latency, one busy core per worker",
    )
    a(
        "--redundancy",
        type=int,
        choices=(1, 2),
        help="connections per worker receiving every channel (default 1); 2: the first copy of each change "
        "wins and a fault on one connection leaves no book blind",
    )
    a(
        "--instance",
        help="instance namespace for rings and the control socket (default $FEEDER_INSTANCE or default)",
    )
    a("--duration", type=float, metavar="S", help="stop after S seconds (default: run until a signal)")
    a("--metrics-port", type=int, metavar="P", help="serve Prometheus metrics on 127.0.0.1:P/metrics")
    a("--record", metavar="DIR", help="record every worker's session as JSONL in DIR")
    a("--cancel-on-disconnect", choices=("connection", "account", "off"), help="scope (default connection)")
    a(
        "--audit-interval",
        type=float,
        metavar="S",
        help="seconds between audits of each book against the exchange's get_order_book (default 60, 0: off)",
    )
    a(
        "--liveness-interval",
        type=float,
        metavar="S",
        help="ping a connection that sent nothing for S seconds, again every S (default 0.5, 0: off)",
    )
    a(
        "--liveness-timeout",
        type=float,
        metavar="S",
        help="a connection with nothing (no frame, no answer) proving it alive for S seconds is dead: "
        "its rings get a GAP and it reconnects (default 1.5)",
    )
    a(
        "--crossed",
        choices=("resync", "flag"),
        help="a crossed or locked book: resync it like a gap (default) or only flag it CROSSED",
    )
    a(
        "--tier",
        type=int,
        choices=(1, 2, 3, 4),
        help="account tier for rate limits the account does not report",
    )
    a("--credentials-file", metavar="FILE", help="0600 TOML file with client_id and client_secret")
    a(
        "--display",
        choices=("auto", "live", "plain", "off"),
        help="live view on a terminal, log lines otherwise",
    )
    a("--log-level", choices=("debug", "info", "warning", "error"), help="default info")
    a(
        "--check",
        action="store_true",
        help="validate the configuration, print the plan (instruments, rings, shared memory) and exit; "
        "patterns, kinds and currencies are resolved with the exchange (with --sim, the embedded one)",
    )
    return p


def _overrides(ns: argparse.Namespace) -> dict[str, Any]:
    skip = {"config", "check"}
    out = {k: v for k, v in vars(ns).items() if k not in skip and v is not None}
    if "cpus" in out:
        try:
            out["cpus"] = [int(x) for x in out["cpus"].split(",") if x.strip()]
        except ValueError:
            raise ConfigError("cpus", ns.cpus, "comma-separated CPU numbers such as 0,1") from None
    return out


def plan(config: cfg.FeederConfig, resolved: Resolved | None = None) -> dict[str, Any]:
    """What the feeder would run: instruments, rings per worker, shared memory, URL; no side effects."""
    from feeder.runtime.plan import initial, layout_of

    resolved = resolved or without_exchange(config)
    cpus = list(config.cpus) if config.cpus else sorted(os.sched_getaffinity(0))
    p, _ = initial(layout_of(config, authenticated=config.sim), config.workers, resolved.instruments, cpus)
    needed = p.size_bytes
    return {
        "exchange": config.exchange,
        "url": "embedded simulator" if config.sim else config.ws_url,
        "workers": p.workers,
        "redundancy": config.redundancy,
        "connections": p.workers * config.redundancy,
        "instruments": [info.name for info in resolved.instruments],
        "asked_exchange": resolved.asked,
        "rings": sorted(p.rings),
        "records": {name: spec.record_type for name, spec in sorted(p.rings.items())},
        "ring_bytes": {name: spec.size_bytes for name, spec in sorted(p.rings.items())},
        "shm_bytes": needed,
        "shm_size_advice": shm_size_advice(needed),
        "follows_listings": bool(resolved.selection.state_channels(resolved.instruments)),
        "instance": config.instance,
    }


async def _ask_exchange(config: cfg.FeederConfig) -> Resolved:
    if not config.sim:
        return await resolve(config, config.ws_url)
    from feeder.sim import SimServer

    loop = asyncio.get_running_loop()
    names = sim_instruments(config)
    sim = SimServer(instruments=names) if names else SimServer()
    await loop.run_in_executor(None, sim.start)
    try:
        return await resolve(config, sim.ws_url)
    finally:
        await loop.run_in_executor(None, sim.stop)


def check(config: cfg.FeederConfig) -> dict[str, Any]:
    """`--check`: the plan, after asking the exchange when the selection needs it; the shared memory
    it needs must fit (SharedMemoryTooSmall otherwise)."""
    resolved = without_exchange(config) if selection_of(config).exact else asyncio.run(_ask_exchange(config))
    out = plan(config, resolved)
    check_free(out["shm_bytes"])
    return out


def main(argv: list[str]) -> int:
    ns = parser().parse_args(argv)
    try:
        config = cfg.build(cfg.load_file(ns.config) if ns.config else None, _overrides(ns))
        if ns.check:
            print(json.dumps({"ok": True, **check(config)}, indent=2))
            return 0
    except UsageError as exc:
        print(f"feeder: {exc}", file=sys.stderr)
        return 2
    except ExchangeUnavailable as exc:
        print(f"feeder: {exc}", file=sys.stderr)
        return 1
    from feeder.runtime import logs

    logs.configure(config.log_level)
    from feeder.runtime.supervisor import Supervisor

    try:
        return asyncio.run(Supervisor(config).run())
    except UsageError as exc:
        print(f"feeder: {exc}", file=sys.stderr)
        return 2
    except ExchangeUnavailable as exc:
        print(f"feeder: {exc}", file=sys.stderr)
        return 1
