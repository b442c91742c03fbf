"""Soak test: the whole feeder against the local exchange for minutes, with faults, counting what was lost.

    python scripts/soak.py --duration 600 --rate 10000 --workers 4 --consumers 3 --faults 30
    python scripts/soak.py --duration 180 --rate 8000 --redundancy 1,2   # the same faults, side by side

Starts the simulator (with its truth log), the feeder (`python -m feeder --url <sim>`, raw channels
with the demo credentials) and consumer processes that log every book record they read; injects a
fault every duration/faults seconds (simulator faults on one connection, SIGKILL/SIGSTOP of a
worker, a consumer paused until it is lapped); then checks every record against the simulator's
ground truth. Writes OUT/soak-report.json and OUT/soak.png (matplotlib, the `plot` extra), prints a
one-screen summary (or the report with --json) and exits 1 on an undetected loss, a wrong book, a
record out of order, an RSS leak or a leftover process or segment; 2 on bad usage. `--redundancy 1,2`
runs the soak once per setting (OUT/r1, OUT/r2: the same seed, so the same fault schedule) and prints the
faults side by side with their blind time in each (OUT/soak-compare.json); it fails if either run fails.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from soak import compare
from soak import report as reporting
from soak.faults import KINDS, check_kinds
from soak.run import Options, RunData, Soak


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python scripts/soak.py",
        description=__doc__.splitlines()[0],
        epilog=f"fault kinds: {', '.join(KINDS)}",
    )
    a = p.add_argument
    a("--duration", type=float, default=600.0, help="seconds of soak after everything is connected")
    a("--rate", type=float, default=10_000.0, help="book updates per second across all instruments")
    a("--workers", type=int, default=4, help="feeder worker processes")
    a(
        "--redundancy",
        default="1",
        help="the feeder's connections per worker: 1, 2, or 1,2 for both in turn, compared side by side",
    )
    a("--consumers", type=int, default=3, help="consumer processes (the last one is the slow one)")
    a("--faults", type=int, default=30, help="faults to inject, evenly spaced")
    a("--instruments", type=int, default=8, help="instruments (the simulator's first N)")
    a("--streams", default="book,trades,ticker", help="streams the feeder runs (books are checked)")
    a("--fault-kinds", default=",".join(KINDS), help="comma-separated subset of the fault kinds")
    a("--seed", type=int, default=1)
    a("--instance", default=None, help="feeder instance for the run (default: a new unique one)")
    a("--out", type=Path, default=Path("soak-out"), help="directory for the report, PNG and logs")
    a("--book-capacity", type=int, default=None, help="book ring capacity (default: the feeder's)")
    a("--hang-timeout", type=float, default=2.0, help="the supervisor's hang timeout, s")
    a(
        "--audit-interval",
        type=float,
        default=5.0,
        help="the feeder's audit_interval, s per book (short enough to find every phantom between faults)",
    )
    a("--lead", type=float, default=None, help="seconds before the first fault (default 10%% of duration)")
    a(
        "--settle",
        type=float,
        default=None,
        help="seconds after the last fault (default 15, or 25%% if shorter)",
    )
    a(
        "--warmup",
        type=float,
        default=None,
        help="seconds before RSS growth counts (default 20%% of duration)",
    )
    a("--window", type=float, default=None, help="latency window, s (default duration/60, at least 1)")
    a("--sample", type=float, default=1.0, help="seconds between RSS/CPU samples")
    a("--leak-mib", type=float, default=64.0, help="RSS growth after warm-up that counts as a leak")
    a("--keep-data", action="store_true", help="keep the truth log and observation logs")
    a("--json", action="store_true", help="print the report as JSON instead of the summary")
    return p


def options(ns: argparse.Namespace) -> Options:
    for name in ("duration", "rate", "sample"):
        if getattr(ns, name) <= 0:
            raise ValueError(f"--{name} must be > 0")
    for name in ("workers", "consumers", "instruments"):
        if getattr(ns, name) < 1:
            raise ValueError(f"--{name} must be at least 1")
    if ns.faults < 0:
        raise ValueError("--faults must be >= 0")
    if ns.audit_interval < 0:
        raise ValueError("--audit-interval must be >= 0 (0: no audits, then phantoms go undetected)")
    if ns.book_capacity is not None and (ns.book_capacity < 16 or ns.book_capacity & (ns.book_capacity - 1)):
        raise ValueError("--book-capacity must be a power of two, at least 16")
    redundancy = settings(ns.redundancy)
    d = ns.duration
    return Options(
        duration=d,
        rate=ns.rate,
        workers=ns.workers,
        consumers=ns.consumers,
        faults=ns.faults,
        instruments=ns.instruments,
        streams=ns.streams,
        kinds=check_kinds([k for k in ns.fault_kinds.split(",") if k]),
        seed=ns.seed,
        out=ns.out,
        book_capacity=ns.book_capacity,
        hang_timeout=ns.hang_timeout,
        lead_s=ns.lead if ns.lead is not None else 0.1 * d,
        settle_s=ns.settle if ns.settle is not None else min(15.0, 0.25 * d),
        warmup_s=ns.warmup if ns.warmup is not None else 0.2 * d,
        window_s=ns.window if ns.window is not None else max(1.0, d / 60),
        sample_s=ns.sample,
        leak_mib=ns.leak_mib,
        keep_data=ns.keep_data,
        audit_interval=ns.audit_interval,
        redundancy=redundancy[0],
    )


def settings(text: str) -> list[int]:
    """--redundancy: 1, 2 or 1,2."""
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        values = []
    if not values or len(set(values)) != len(values) or not set(values) <= {1, 2}:
        raise ValueError(f"--redundancy must be 1, 2 or 1,2, not {text!r}")
    return values


def main(argv: list[str] | None = None) -> int:
    ns = parser().parse_args(argv)
    try:
        opts = options(ns)
        redundancy = settings(ns.redundancy)
    except ValueError as exc:
        print(f"soak: {exc}", file=sys.stderr)
        return 2
    if len(redundancy) == 1:
        return 0 if soak(opts, ns.instance, ns.json)["ok"] else 1
    reports = {}
    for r in redundancy:
        run_opts = dataclasses.replace(opts, redundancy=r, out=opts.out / f"r{r}")
        instance = f"{ns.instance}r{r}" if ns.instance else None
        print(f"--- redundancy {r} ---", flush=True)
        reports[r] = soak(run_opts, instance, ns.json)
    comparison = compare.compare(reports)
    (opts.out / "soak-compare.json").write_text(json.dumps(comparison, indent=1))
    print(f"\n{compare.summary(comparison)}\n\ncomparison: {opts.out / 'soak-compare.json'}")
    return 0 if all(r["ok"] for r in reports.values()) else 1


def soak(opts: Options, instance: str | None, as_json: bool) -> dict:
    """One soak run, its report written and printed."""
    run = Soak(opts, instance).run()
    report = reporting.build(run)
    report["png"] = str(opts.out / "soak.png")
    why_not = reporting.plot(report, opts.out / "soak.png")
    if why_not:
        report["png"] = None
        report["png_note"] = why_not
    (opts.out / "soak-report.json").write_text(reporting.dumps(report))
    if not opts.keep_data:
        _remove_data(run)
    if as_json:
        print(reporting.dumps(report, series=False))
    else:
        print(reporting.summary(report))
        where = f"report: {opts.out / 'soak-report.json'}; " + (why_not or f"plot: {report['png']}")
        print(f"\n{where}", flush=True)
    return report


def _remove_data(run: RunData) -> None:
    """The truth log and observation logs are big (about 1 GB for 10 minutes at 10k/s): gone unless kept."""
    for path in [run.truth_path, *run.consumer_logs, *([run.trade_log] if run.trade_log else [])]:
        path.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
