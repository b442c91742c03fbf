"""`feeder replicate --nats URL`: local copies of another host's rings; `feeder replicate status`."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from feeder.cli.bridge import NATS_HELP, add_nats_flags, bridge_main, nats_config
from feeder.errors import UsageError
from feeder.ring.names import instance_name

if TYPE_CHECKING:
    from feeder.bridge.replica import Replica, ReplicaConfig


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="feeder replicate",
        description="Write the rings a `feeder mirror` publishes on NATS into local rings of the same names, "
        "record types and capacities, at the source's seqs: local strategies read them with RingReader. "
        "Every missing seq becomes a GAP/MARKER record and a lost count. `feeder replicate status` shows "
        "a running one.",
        epilog=NATS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_nats_flags(p)
    a = p.add_argument
    a("--source", help="the mirror to follow: its --source name (default: the instance name)")
    a("--jetstream", action="store_true", help="fill missing seqs and a late start from the mirror's stream")
    a(
        "--repair-timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="give up a JetStream repair after S s (default 10)",
    )
    return p


def main(argv: list[str]) -> int:
    return bridge_main("replicate", "replica", argv, parser(), _config, _plan, _replica)


def _replica(config: ReplicaConfig) -> Replica:
    from feeder.bridge.replica import Replica

    return Replica(config)


def _config(ns: argparse.Namespace) -> ReplicaConfig:
    from feeder.bridge.replica import ReplicaConfig
    from feeder.bridge.wire import RingPatterns, check_source

    instance = instance_name(ns.instance)
    if not ns.repair_timeout > 0:
        raise UsageError(f"--repair-timeout must be > 0 seconds, got {ns.repair_timeout}")
    return ReplicaConfig(
        nats=nats_config(ns),
        instance=instance,
        source=check_source(ns.source or instance),
        rings=RingPatterns(ns.rings),
        jetstream=ns.jetstream,
        repair_timeout_s=ns.repair_timeout,
    )


def _plan(config: ReplicaConfig) -> dict[str, Any]:
    from feeder.bridge.wire import Subjects

    subjects = Subjects(config.source)
    return {
        "ok": True,
        "role": "replica",
        "nats": list(config.nats.servers),
        "instance": config.instance,
        "source": config.source,
        "rings": list(config.rings.globs),
        "subscribe": config.rings.filters(subjects),
        "stream": subjects.stream if config.jetstream else None,
    }
