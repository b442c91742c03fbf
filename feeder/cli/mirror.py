"""`feeder mirror --nats URL`: publish this host's rings on NATS; `feeder mirror status`."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from feeder.cli.bridge import NATS_HELP, add_nats_flags, bridge_main, nats_config
from feeder.errors import UsageError
from feeder.ring.names import instance_name

if TYPE_CHECKING:
    from feeder.bridge.mirror import Mirror, MirrorConfig


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="feeder mirror",
        description="Publish the records of this host's rings on NATS (a ring reader: never slows a writer), "
        "for `feeder replicate` on other hosts. `feeder mirror status` shows a running one.",
        epilog=NATS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_nats_flags(p)
    a = p.add_argument
    a(
        "--source",
        help="name of these rings on NATS: subjects feeder.NAME.rings.* (default: the instance name)",
    )
    a("--jetstream", action="store_true", help="keep the records in the JetStream stream FEEDER_<source>")
    a(
        "--retention",
        type=float,
        default=300.0,
        metavar="S",
        help="with --jetstream: keep records S seconds (default 300)",
    )
    a(
        "--retention-bytes",
        type=int,
        default=1 << 30,
        metavar="N",
        help="with --jetstream: at most N bytes (default 1 GiB)",
    )
    a(
        "--heartbeat",
        type=float,
        default=1.0,
        metavar="S",
        help="idle rings announce their position every S s",
    )
    a("--orders", action="store_true", help="answer FeederHandle(nats=...) requests through the local feeder")
    return p


def main(argv: list[str]) -> int:
    return bridge_main("mirror", "mirror", argv, parser(), _config, _plan, _mirror)


def _mirror(config: MirrorConfig) -> Mirror:
    from feeder.bridge.mirror import Mirror

    return Mirror(config)


def _config(ns: argparse.Namespace) -> MirrorConfig:
    from feeder.bridge.mirror import MirrorConfig
    from feeder.bridge.wire import RingPatterns, check_source

    instance = instance_name(ns.instance)
    for name, value in (("retention", ns.retention), ("heartbeat", ns.heartbeat)):
        if not value > 0:
            raise UsageError(f"--{name} must be > 0 seconds, got {value}")
    if ns.retention_bytes < 1 << 20:
        raise UsageError(f"--retention-bytes must be at least 1 MiB, got {ns.retention_bytes}")
    return MirrorConfig(
        nats=nats_config(ns),
        instance=instance,
        source=check_source(ns.source or instance),
        rings=RingPatterns(ns.rings),
        jetstream=ns.jetstream,
        retention_s=ns.retention,
        retention_bytes=ns.retention_bytes,
        heartbeat_s=ns.heartbeat,
        orders=ns.orders,
    )


def _plan(config: MirrorConfig) -> dict[str, Any]:
    from feeder.bridge.wire import Subjects

    subjects = Subjects(config.source)
    return {
        "ok": True,
        "role": "mirror",
        "nats": list(config.nats.servers),
        "instance": config.instance,
        "source": config.source,
        "rings": list(config.rings.globs),
        "subjects": subjects.all_rings,
        "stream": subjects.stream if config.jetstream else None,
        "retention_s": config.retention_s if config.jetstream else None,
        "orders": subjects.orders if config.orders else None,
    }
