"""Benchmark: simulator -> feeder -> ring -> strategy, against simulator -> cryptofeed -> ZMQ -> strategy.

The same simulator feed (same seed, instruments and rate: every trial starts a fresh simulator) goes
into a strategy process through each pipeline, side by side in one run:

0. the simulator alone into a bare raw subscriber (scripts/bench_e2e/ceiling.py): its ceiling on this
   machine; a pipeline trial above it that is not sustained is "simulator-bound", never the pipeline's
   limit;

1. feeder: `python -m feeder --url <simulator>` (one worker, raw book channels) -> shared-memory rings
   -> a strategy process polling `RingReader`s;
2. cryptofeed 2.4: its Deribit feed pointed at the simulator (REST for the instruments, then the
   WebSocket) -> its ZMQ backend (`BookZMQ`) -> a strategy process with a pyzmq SUB socket.

Latency: from the simulator's send time (wall clock ns, kept per channel and change_id) to the moment
the strategy process has the update (a numpy record / a decoded dict). The ramp climbs a ladder of
rates (1k, 5k, 10k, 20k, 40k, 80k), one trial per rate and pipeline, interleaved so that machine
noise hits all alike; a pipeline stops climbing after its first rate it does not sustain, and nothing
climbs past the first rate the simulator alone does not sustain (the fixed rates 1k and 10k are
always measured). Sustained = nothing lost or GAP-flagged, in order, no pipeline restart, latency not
growing over the window (last quarter's median <= 2x the first quarter's + 1 ms, and the median under
50 ms), and the simulator really produced >= 90% of the rate (when it cannot, the pipeline's limit is
above what this machine can generate). Then the feeder alone at one total rate over 1, 100, 1000 and
2000 instruments (the simulator's first N: perpetuals, futures, then options, which the feeder serves
in chain rings): worker and supervisor CPU per update (and the worker's as a ratio of the
1-instrument figure), memory (RSS, USS, ring segments allocated and resident); and a ChainReader's
CPU per record over chains of as many instruments.

Pinning: the pipeline under test (the feeder's worker via its --cpus, or cryptofeed's process) gets a
CPU to itself; on 2 CPUs the simulator and the strategy process share the other one.

With `--busy-poll`, the feeder again at the fixed rates with `busy_poll = true`: a separate row (the
targets are for the default mode). With `--redundancy-row`, the feeder with `redundancy = 2` (two
connections per worker, the first copy of each change wins) next to redundancy 1 at the fixed rates,
interleaved, `--repeat` rounds, medians: its own rows, latency and the worker's CPU per update. And the
feeder at rest (scripts/bench_e2e/idle.py): worker and
supervisor CPU per second with 1 and 1,000 quiet books, audits on and off.

Usage: python scripts/bench_e2e.py [--quick] [--json] [--seconds S] [--rates R,R..] [--counts N,N..]
                                   [--feeder-config FILE] [--busy-poll] [--idle-counts N,N..] [--idle-seconds S]
                                   [--scaling-only] [--repeat K] [--redundancy-row]
Targets (issue 11): feeder p50 <= 0.25x cryptofeed's at 1k and 10k/s; highest sustained rate >= 3x;
worker receive -> ring publish p50 <= 10 us at 1k and 10k/s, p99 <= 40 us at 1k/s; worker CPU per
update <= 25 us at 1k/s and <= 10 us at 10k/s.
(issue 12): the worker's CPU per update at every count within 1.25x of the 1-instrument figure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

from bench_e2e.analysis import SUSTAINED, highest_sustained, mark_simulator_bound
from bench_e2e.ceiling import NAME as CEILING
from bench_e2e.chaincost import chain_reader_cost
from bench_e2e.idle import idle_cost
from bench_e2e.pipelines import PIPELINES, Bench, Layout, TrialSpec, run_trial
from bench_e2e.report import fmt
from bench_e2e.report import lines as report_lines

RAMP_INSTRUMENTS = ("BTC-PERPETUAL", "ETH-PERPETUAL")
FIXED_RATES = (1_000, 10_000)
FULL = {
    "rates": (1_000, 5_000, 10_000, 20_000, 40_000, 80_000),
    "counts": (1, 100, 1000, 2000),
    "seconds": 20.0,
    "warmup": 2.0,
    "scaling_rate": 5_000,
    "idle_counts": (1, 1000),
    "idle_seconds": 10.0,
}
QUICK = {
    "rates": (1_000, 10_000, 40_000),
    "counts": (1, 10, 100),
    "seconds": 3.0,
    "warmup": 1.0,
    "scaling_rate": 2_000,
    "idle_counts": (1,),
    "idle_seconds": 3.0,
}
TARGET_P50_RATIO = 0.25
TARGET_RATE_RATIO = 3.0
TARGET_WORKER = {  # rate: (receive -> publish p50 us, p99 us or None, worker CPU us per update)
    1_000: (10.0, 40.0, 25.0),
    10_000: (10.0, None, 10.0),
}
TARGET_SCALING_RATIO = 1.25
SCALING_CHAINS = ("option",)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _trial(spec: TrialSpec, bench: Bench) -> dict:
    """One trial; a failure becomes a trial whose verdict says what broke (the run goes on)."""
    began = time.monotonic()
    try:
        result = run_trial(spec, bench)
    except Exception as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        result = {
            "pipeline": spec.pipeline,
            "rate": spec.rate,
            "verdict": f"error: {first_line}",
            "error": str(exc),
        }
    result["wall_s"] = round(time.monotonic() - began, 1)
    lat = result.get("latency_us", {})
    _progress(
        f"  {spec.pipeline:>10} {fmt(result.get('instruments')):>4} instr {spec.rate:>9,.0f}/s: "
        f"sent {fmt(result.get('sent_rate')):>9}/s  p50 {fmt(lat.get('p50')):>9} us  "
        f"p99 {fmt(lat.get('p99')):>9} us  {result['verdict']}  ({result['wall_s']} s)"
    )
    return result


def ramp(rates: list[float], seconds: float, warmup: float, bench: Bench) -> dict:
    """Up the ladder: at each rate the simulator alone first (its ceiling), then both pipelines,
    interleaved. Each stops after its first unsustained rate; the pipelines go one rate past the
    simulator's ceiling at most (what fails there is marked simulator-bound)."""
    order = (CEILING, *PIPELINES)
    results: dict[str, list[dict]] = {p: [] for p in order}
    climbing = dict.fromkeys(order, True)
    for rate in rates:
        fixed = rate in FIXED_RATES
        above_ceiling = bool(results[CEILING]) and results[CEILING][-1]["verdict"] != SUSTAINED
        for pipeline in order:
            if not fixed and (not climbing[pipeline] or above_ceiling):
                continue
            trial = _trial(TrialSpec(pipeline, RAMP_INSTRUMENTS, rate, warmup, seconds), bench)
            results[pipeline].append(trial)
            if trial["verdict"] != SUSTAINED:
                climbing[pipeline] = False
        if not any(climbing[p] for p in PIPELINES) and all(rate >= f for f in FIXED_RATES if f in rates):
            break
    ceiling = simulator_ceiling(results[CEILING])
    for pipeline in PIPELINES:
        mark_simulator_bound(results[pipeline], ceiling["rate"])
    return results


def simulator_ceiling(trials: list[dict]) -> dict:
    """The highest rate the simulator sustained into the bare subscriber, and whether that was the highest
    rate tried (then its real ceiling is that or higher)."""
    best = highest_sustained(trials)["rate"]
    top = max((t["rate"] for t in trials), default=None)
    return {"rate": best, "above_ladder": best is not None and best == top}


def busy_poll(rates: list[float], seconds: float, warmup: float, bench: Bench, workdir: str) -> list[dict]:
    """The feeder with `busy_poll = true` at the fixed rates (a separate row)."""
    path = os.path.join(workdir, "busy-poll.toml")
    with open(path, "w") as f:
        f.write("busy_poll = true\n" + (_config_text(bench.feeder_config) or ""))  # before any [table]
    busy = Bench(bench.layout, bench.instance, path)
    return [_trial(TrialSpec("feeder", RAMP_INSTRUMENTS, r, warmup, seconds), busy) for r in rates]


def redundancy(
    rates: list[float], seconds: float, warmup: float, bench: Bench, workdir: str, repeat: int
) -> dict:
    """The feeder with redundancy 1 and 2 at the fixed rates, interleaved, `repeat` rounds: every trial and,
    per rate and setting, the median of each figure (and 2's over 1's)."""
    path = os.path.join(workdir, "redundancy.toml")
    with open(path, "w") as f:
        f.write("redundancy = 2\n" + (_config_text(bench.feeder_config) or ""))  # before any [table]
    benches = {1: bench, 2: Bench(bench.layout, bench.instance, path)}
    trials: dict[int, list[dict]] = {1: [], 2: []}
    for rate in rates:
        for _ in range(repeat):
            for r, b in benches.items():
                trial = _trial(TrialSpec("feeder", RAMP_INSTRUMENTS, rate, warmup, seconds), b)
                trial["redundancy"] = r
                trials[r].append(trial)
    medians = []
    for rate in rates:
        row: dict = {"rate": rate}
        for name, get in _REDUNDANCY_FIGURES.items():
            pair = {
                r: _median([get(t) for t in trials[r] if t["rate"] == rate and "latency_us" in t])
                for r in (1, 2)
            }
            row[name] = {"1": pair[1], "2": pair[2], "ratio": _ratio(pair[2], pair[1])}
        medians.append(row)
    return {"trials": trials[1] + trials[2], "medians": medians}


_REDUNDANCY_FIGURES = {
    "p50_us": lambda t: t["latency_us"]["p50"],
    "p99_us": lambda t: t["latency_us"]["p99"],
    "worker_us_per_update": lambda t: t["cpu"]["by_process_us_per_update"].get("worker0"),
}


def _median(values: list[float | None]) -> float | None:
    known = sorted(v for v in values if v is not None)
    return known[len(known) // 2] if known else None


def idle(counts: list[int], seconds: float, bench: Bench) -> list[dict]:
    """Worker and supervisor CPU per second at rest, with audits on and off."""
    out = []
    for n in counts:
        for audit in (True, False):
            try:
                result = idle_cost(n, seconds, bench, audit)
            except Exception as exc:
                result = {"instruments": n, "audit": audit, "error": str(exc).splitlines()[0]}
            _progress(
                f"  idle {n:>5} instr, audits {'on ' if audit else 'off'}: {result.get('cpu_ms_per_s')}"
            )
            out.append(result)
    return out


def scaling(counts: list[int], rate: float, seconds: float, warmup: float, bench: Bench, repeat: int) -> list:
    """The feeder at one total rate spread over more and more instruments (options in chain rings),
    `repeat` trials per count, interleaved, the median trial by worker CPU kept (with the others' figures)."""
    runs: dict[int, list[dict]] = {n: [] for n in counts}
    for _ in range(repeat):
        for n in counts:
            runs[n].append(
                _trial(TrialSpec("feeder", n, rate, warmup, seconds, chains=SCALING_CHAINS), bench)
            )
    out = [_median_trial(runs[n]) for n in counts]
    base = _worker_cpu(out[0]) if out else None
    for trial in out:
        cpu = _worker_cpu(trial)
        trial["worker_cpu_ratio"] = _ratio(cpu, base) if counts and counts[0] == 1 else None
    return out


def _worker_cpu(trial: dict) -> float | None:
    return trial.get("cpu", {}).get("by_process_us_per_update", {}).get("worker0")


def _median_trial(trials: list[dict]) -> dict:
    measured = sorted((t for t in trials if _worker_cpu(t) is not None), key=_worker_cpu)
    if not measured:
        return trials[0]
    median = dict(measured[len(measured) // 2])
    median["worker_us_per_update_runs"] = [_worker_cpu(t) for t in trials]
    return median


def chain_costs(counts: list[int], instance: str, repeat: int) -> list[dict]:
    """A ChainReader's CPU per record over chains of `counts` instruments."""
    return [chain_reader_cost(n, instance, repeat=repeat) for n in counts]


def summarise(ramp_results: dict) -> dict:
    """Feeder vs cryptofeed at every rate both ran (ratio = feeder / cryptofeed), the highest sustained
    rates, and the issue's targets (p50 at the fixed rates, sustained rate)."""
    by_rate = []
    for rate in sorted(
        {t["rate"] for t in ramp_results["feeder"]} & {t["rate"] for t in ramp_results["cryptofeed"]}
    ):
        f, c = (_at(ramp_results[p], rate) for p in PIPELINES)
        if f is None or c is None:
            continue
        row: dict = {"rate": rate, "verdicts": {"feeder": f["verdict"], "cryptofeed": c["verdict"]}}
        for name, get in _COMPARED.items():
            pair = {"feeder": get(f), "cryptofeed": get(c)}
            row[name] = {**pair, "ratio": _ratio(pair["feeder"], pair["cryptofeed"])}
        by_rate.append(row)
    best = {p: highest_sustained([t for t in ramp_results[p] if "sent" in t]) for p in PIPELINES}
    rate_ratio = _ratio(best["feeder"]["rate"], best["cryptofeed"]["rate"])
    fixed = {str(int(r["rate"])): r["p50_us"]["ratio"] for r in by_rate if r["rate"] in FIXED_RATES}
    return {
        "by_rate": by_rate,
        "highest_sustained": {**best, "ratio": rate_ratio},
        "simulator_ceiling": simulator_ceiling(ramp_results[CEILING]),
        "worker": worker_targets(ramp_results["feeder"]),
        "targets": {
            "p50_ratio_at_most": round(TARGET_P50_RATIO, 3),
            "p50_ratio_at_fixed_rates": fixed,
            "p50_met": {
                rate: ratio is not None and ratio <= TARGET_P50_RATIO for rate, ratio in fixed.items()
            },
            "rate_ratio_at_least": TARGET_RATE_RATIO,
            "rate_met": None if rate_ratio is None else rate_ratio >= TARGET_RATE_RATIO,
        },
    }


def worker_targets(trials: list[dict]) -> dict:
    """The worker's own figures at the fixed rates against issue 11's targets: receive -> publish
    p50/p99 (us) and the worker process's CPU per update (us)."""
    out = {}
    for rate, (p50_max, p99_max, cpu_max) in TARGET_WORKER.items():
        trial = _at(trials, rate)
        if trial is None:
            continue
        stage = trial.get("stages_us", {}).get("worker receive -> ring publish", {})
        cpu = trial["cpu"]["by_process_us_per_update"].get("worker0")
        figures = {"p50_us": stage.get("p50"), "p99_us": stage.get("p99"), "cpu_us_per_update": cpu}
        limits = {"p50_us": p50_max, "p99_us": p99_max, "cpu_us_per_update": cpu_max}
        out[str(rate)] = {name: _against(value, limits[name]) for name, value in figures.items()}
    return out


def _against(value: float | None, at_most: float | None) -> dict:
    met = None if value is None or at_most is None else value <= at_most
    return {"value": value, "at_most": at_most, "met": met}


_COMPARED = {
    "p50_us": lambda t: t["latency_us"]["p50"],
    "p99_us": lambda t: t["latency_us"]["p99"],
    "cpu_us_per_update": lambda t: t["cpu"]["us_per_update"].get("pipeline"),
}


def _at(trials: list[dict], rate: float) -> dict | None:
    return next((t for t in trials if t["rate"] == rate and "latency_us" in t), None)


def _scaling_target(trials: list[dict]) -> dict:
    ratios = {str(t.get("instruments")): t.get("worker_cpu_ratio") for t in trials}
    return {
        "worker_cpu_ratio_at_most": TARGET_SCALING_RATIO,
        "ratios": ratios,
        "met": all(r is not None and r <= TARGET_SCALING_RATIO for r in ratios.values()) if trials else None,
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def _config_text(path: str | None) -> str | None:
    """The feeder config's text, kept in the report so a run says how the feeder was set up."""
    if path is None:
        return None
    with open(path) as f:
        return f.read()


def _csv(text: str, kind: type) -> list:
    return [kind(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="about a minute: 3 s trials, a short ladder")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of tables")
    parser.add_argument("--seconds", type=float, help="measured seconds per trial")
    parser.add_argument("--rates", help="the ramp's ladder of total updates/s, comma-separated")
    parser.add_argument("--counts", help="instrument counts of the feeder's cost trials, comma-separated")
    parser.add_argument("--scaling-only", action="store_true", help="only the cost trials (no ramp)")
    parser.add_argument("--repeat", type=int, default=1, help="cost trials per count (the median is kept)")
    parser.add_argument(
        "--feeder-config",
        metavar="FILE",
        help="a TOML file given to the feeder (--config), e.g. ring capacity",
    )
    parser.add_argument(
        "--busy-poll", action="store_true", help="also the feeder with busy_poll at the fixed rates"
    )
    parser.add_argument(
        "--redundancy-row",
        action="store_true",
        help="also the feeder with redundancy = 2 next to 1 at the fixed rates (--repeat rounds)",
    )
    parser.add_argument(
        "--idle-counts", help="instrument counts of the rest trials, comma-separated (0: none)"
    )
    parser.add_argument("--idle-seconds", type=float, help="measured seconds per rest trial")
    args = parser.parse_args(argv)
    plan = dict(QUICK if args.quick else FULL)
    if args.seconds:
        plan["seconds"] = args.seconds
    if args.idle_seconds:
        plan["idle_seconds"] = args.idle_seconds
    rates = sorted(_csv(args.rates, float)) if args.rates else list(plan["rates"])
    counts = _csv(args.counts, int) if args.counts else list(plan["counts"])
    idle_counts = (
        [n for n in _csv(args.idle_counts, int) if n] if args.idle_counts else list(plan["idle_counts"])
    )
    layout = Layout.for_this_machine()
    instance = os.environ.get("FEEDER_INSTANCE") or f"bench-e2e-{os.getpid()}"
    feeder_config = os.path.abspath(args.feeder_config) if args.feeder_config else None
    bench = Bench(layout, instance, feeder_config)
    began = time.monotonic()
    report: dict = {
        "machine": {
            "cpus": os.cpu_count(),
            "layout": layout.describe(),
            "load_average_before": os.getloadavg()[0],
        },
        "settings": {
            "ramp_instruments": list(RAMP_INSTRUMENTS),
            "rates": rates,
            "fixed_rates": list(FIXED_RATES),
            "seconds": plan["seconds"],
            "warmup": plan["warmup"],
            "scaling_counts": counts,
            "scaling_rate": plan["scaling_rate"],
            "idle_counts": idle_counts,
            "idle_seconds": plan["idle_seconds"],
            "busy_poll_row": args.busy_poll,
            "redundancy_row": args.redundancy_row,
            "scaling_chains": list(SCALING_CHAINS),
            "scaling_repeat": args.repeat,
            "feeder_config": _config_text(feeder_config),
        },
    }
    _progress(f"bench_e2e: {layout.describe()}")
    if not args.scaling_only:
        _progress("ramp (both pipelines, interleaved):")
        report["ramp"] = ramp(rates, plan["seconds"], plan["warmup"], bench)
        report["summary"] = summarise(report["ramp"])
        if args.busy_poll:
            _progress("feeder with busy_poll at the fixed rates:")
            with tempfile.TemporaryDirectory(prefix="bench-e2e-") as workdir:
                fixed = [r for r in rates if r in FIXED_RATES]
                report["busy_poll"] = busy_poll(fixed, plan["seconds"], plan["warmup"], bench, workdir)
        if args.redundancy_row:
            _progress("feeder with redundancy 1 and 2 at the fixed rates, interleaved:")
            with tempfile.TemporaryDirectory(prefix="bench-e2e-") as workdir:
                fixed = [r for r in rates if r in FIXED_RATES]
                report["redundancy"] = redundancy(
                    fixed, plan["seconds"], plan["warmup"], bench, workdir, max(1, args.repeat)
                )
    if idle_counts:
        _progress(f"feeder at rest, {plan['idle_seconds']:g} s each:")
        report["idle"] = idle(idle_counts, plan["idle_seconds"], bench)
    _progress(f"feeder cost vs instruments at {plan['scaling_rate']:,}/s:")
    report["scaling"] = scaling(
        counts, plan["scaling_rate"], plan["seconds"], plan["warmup"], bench, args.repeat
    )
    report["scaling_target"] = _scaling_target(report["scaling"])
    report["chain_reader"] = chain_costs(counts, instance, max(3, args.repeat))
    report["machine"]["load_average_after"] = os.getloadavg()[0]
    report["machine"]["wall_s"] = round(time.monotonic() - began, 1)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print("\n".join(report_lines(report, (CEILING, *PIPELINES), TARGET_P50_RATIO, TARGET_RATE_RATIO)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
