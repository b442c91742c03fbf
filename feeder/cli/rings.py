"""`python -m feeder rings`: list the rings of an instance (or all), and remove stale ones with --clean."""

from __future__ import annotations

import argparse
import sys

import orjson

from feeder.errors import UsageError
from feeder.ring.inventory import RingInfo, clean_stale, list_rings
from feeder.ring.names import instance_name

COLUMNS = (
    "RING",
    "INSTANCE",
    "STREAM",
    "TYPE",
    "CAPACITY",
    "MEMORY",
    "WRITE_SEQ",
    "WRITER",
    "EPOCH",
    "LAST_PUBLISH",
    "STATUS",
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="feeder rings", description="List the shared-memory rings of a feeder instance."
    )
    parser.add_argument("--instance", help="instance namespace (default: $FEEDER_INSTANCE or 'default')")
    parser.add_argument("--all", action="store_true", help="every instance on this host")
    parser.add_argument(
        "--clean", action="store_true", help="remove rings nobody owns or writes (stale, invalid, incomplete)"
    )
    parser.add_argument("--json", action="store_true", help="one JSON array on stdout")
    return parser


def _age(info: RingInfo) -> str:
    age = info.last_publish_age_s
    if age is None:
        return "never"
    return f"{age * 1e3:.0f} ms ago" if age < 1 else f"{age:.1f} s ago"


def _writer(info: RingInfo) -> str:
    if not info.writer_pid:
        return "-"
    return f"{info.writer_pid} ({'alive' if info.writer_alive else 'dead'})"


def _row(info: RingInfo) -> tuple[str, ...]:
    status = f"{info.status}: {info.problem}" if info.problem else info.status
    return (
        info.name, info.instance, info.stream, info.record_type or "?", str(info.capacity),
        _bytes(info.size_bytes), str(info.write_seq),
        _writer(info), str(info.epoch), _age(info), status,
    )  # fmt: skip


def _bytes(n: int) -> str:
    """Shared memory in binary units: 6.0MiB, 384.5KiB."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n}B"


def _table(infos: list[RingInfo]) -> str:
    rows = [COLUMNS, *(_row(info) for info in infos)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS) - 1)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1]
        for row in rows
    ]
    lines.append(f"{len(infos)} rings, {_bytes(sum(info.size_bytes for info in infos))} of shared memory")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        infos = (clean_stale if args.clean else list_rings)(args.instance, args.all)
    except UsageError as exc:
        print(f"feeder rings: {exc}", file=sys.stderr)
        return 2
    if args.json:
        sys.stdout.buffer.write(orjson.dumps([info.to_dict() for info in infos]) + b"\n")
    elif infos:
        print(("removed:\n" if args.clean else "") + _table(infos))
    else:
        where = "on this host" if args.all else f"in instance {instance_name(args.instance)!r}"
        print(f"no {'stale ' if args.clean else ''}rings {where}")
    return 0
