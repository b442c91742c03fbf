"""The printed report: the ramp, the feeder-vs-cryptofeed summary with ratios, the cost per instrument.

Pure formatting of the JSON report built by scripts/bench_e2e.py; a missing figure prints as `-`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

Column = tuple[str, int, Callable[[dict], Any], str]  # title, width, value of a row, format


def fmt(value: Any, spec: str = ",.0f") -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return format(value, spec)


def table(columns: Sequence[Column], rows: Sequence[dict], last: Callable[[dict], str]) -> list[str]:
    """Fixed-width columns, then a free-width last column (the verdict)."""
    head = " ".join(f"{title:>{width}}" for title, width, _, _ in columns) + "  verdict"
    lines = [head, "-" * len(head)]
    for row in rows:
        cells = " ".join(f"{fmt(get(row), spec):>{width}}" for _, width, get, spec in columns)
        lines.append(f"{cells}  {last(row)}")
    return lines


def _get(*path: str) -> Callable[[dict], Any]:
    def get(row: dict) -> Any:
        value: Any = row
        for key in path:
            if not isinstance(value, dict):
                return None
            value = value.get(key)
        return value

    return get


RAMP_COLUMNS: list[Column] = [
    ("rate/s", 9, _get("rate"), ",.0f"),
    ("pipeline", 10, _get("pipeline"), ""),
    ("sent/s", 9, _get("sent_rate"), ",.0f"),
    ("p50 us", 9, _get("latency_us", "p50"), ",.0f"),
    ("p90 us", 9, _get("latency_us", "p90"), ",.0f"),
    ("p99 us", 9, _get("latency_us", "p99"), ",.0f"),
    ("max us", 10, _get("latency_us", "max"), ",.0f"),
    ("CPU us/update", 13, _get("cpu", "us_per_update", "pipeline"), ",.1f"),
]

STAGE_COLUMNS: list[Column] = [
    ("rate/s", 9, _get("rate"), ",.0f"),
    ("send->worker p50", 16, _get("stages_us", "simulator send -> worker receive", "p50"), ",.0f"),
    ("p99", 7, _get("stages_us", "simulator send -> worker receive", "p99"), ",.0f"),
    ("worker->ring p50", 16, _get("stages_us", "worker receive -> ring publish", "p50"), ",.0f"),
    ("p99", 7, _get("stages_us", "worker receive -> ring publish", "p99"), ",.0f"),
    ("ring->strategy p50", 18, _get("stages_us", "ring publish -> strategy has it", "p50"), ",.0f"),
    ("p99", 7, _get("stages_us", "ring publish -> strategy has it", "p99"), ",.0f"),
    ("worker us/upd", 13, _get("cpu", "by_process_us_per_update", "worker0"), ",.1f"),
]

SCALING_COLUMNS: list[Column] = [
    ("instr", 6, _get("instruments"), ",.0f"),
    ("sent/s", 8, _get("sent_rate"), ",.0f"),
    ("worker us/upd", 13, _get("cpu", "by_process_us_per_update", "worker0"), ",.1f"),
    ("x 1-instr", 9, _get("worker_cpu_ratio"), ".2f"),
    ("superv us/upd", 13, _get("cpu", "by_process_us_per_update", "supervisor"), ",.1f"),
    ("worker RSS MB", 13, _get("memory", "worker0", "rss_mb"), ",.1f"),
    ("worker USS MB", 13, _get("memory", "worker0", "uss_mb"), ",.1f"),
    ("superv RSS MB", 13, _get("memory", "supervisor", "rss_mb"), ",.1f"),
    ("rings", 5, _get("memory", "rings", "count"), ",.0f"),
    ("ring alloc MB", 13, _get("memory", "rings", "allocated_mb"), ",.1f"),
    ("ring resid MB", 13, _get("memory", "rings", "resident_mb"), ",.1f"),
    ("p50 us", 8, _get("latency_us", "p50"), ",.0f"),
]


CHAIN_COLUMNS: list[Column] = [
    ("instr", 6, _get("instruments"), ",.0f"),
    ("batch", 6, _get("batch"), ",.0f"),
    ("ChainReader ns/record", 21, _get("ns_per_record"), ",.0f"),
]


COMPARE_COLUMNS: list[Column] = [
    ("rate/s", 9, _get("rate"), ",.0f"),
    ("p50 feeder", 10, _get("p50_us", "feeder"), ",.0f"),
    ("cryptofeed", 10, _get("p50_us", "cryptofeed"), ",.0f"),
    ("x", 6, _get("p50_us", "ratio"), ".2f"),
    ("p99 feeder", 10, _get("p99_us", "feeder"), ",.0f"),
    ("cryptofeed", 10, _get("p99_us", "cryptofeed"), ",.0f"),
    ("x", 6, _get("p99_us", "ratio"), ".2f"),
    ("CPU/upd feeder", 14, _get("cpu_us_per_update", "feeder"), ",.1f"),
    ("cryptofeed", 10, _get("cpu_us_per_update", "cryptofeed"), ",.1f"),
    ("x", 6, _get("cpu_us_per_update", "ratio"), ".2f"),
]


def _verdict(row: dict) -> str:
    return row["verdict"]


def _both_verdicts(row: dict) -> str:
    v = row["verdicts"]
    return v["feeder"] if v["feeder"] == v["cryptofeed"] else f"{v['feeder']} | {v['cryptofeed']}"


def _best(b: dict) -> str:
    text = fmt(b["rate"])
    return f">= {text}" if b["simulator_capped"] else text


def lines(report: dict, pipelines: Sequence[str], p50_target: float, rate_target: float) -> list[str]:
    s, m = report["settings"], report["machine"]
    out = [
        f"End-to-end: simulator -> pipeline -> strategy process, books of {', '.join(s['ramp_instruments'])}",
        f"layout: {m['layout']}",
        f"{s['seconds']:g} s measured per trial after {s['warmup']:g} s of warm-up, a fresh simulator each",
    ]
    if s.get("feeder_config"):
        out.append("feeder --config: " + "; ".join(x for x in s["feeder_config"].splitlines() if x.strip()))
    out.append("")
    if "ramp" in report:
        out += _ramp_lines(report, pipelines, p50_target, rate_target)
    if report.get("idle"):
        out += ["", "feeder at rest (no updates): CPU ms per second"]
        for row in report["idle"]:
            audits = "audits on " if row["audit"] else "audits off"
            cpu = row.get("cpu_ms_per_s") or {}
            figures = ", ".join(f"{k} {v:,.1f}" for k, v in sorted(cpu.items())) or row.get("error", "-")
            out.append(f"  {row['instruments']:>5} instruments, {audits}: {figures}")
    chains = ", ".join(s.get("scaling_chains") or []) or "none"
    out += [
        "",
        f"feeder cost vs instruments: {s['scaling_rate']:,} updates/s in total, one worker, chain rings for: "
        f"{chains}; median of {s.get('scaling_repeat', 1)} trial(s) by worker CPU",
    ]
    out += table(SCALING_COLUMNS, report["scaling"], _verdict)
    target = report.get("scaling_target")
    if target:
        ratios = ", ".join(f"{n}: {fmt(r, '.2f')}" for n, r in target["ratios"].items())
        out.append(f"target worker CPU per update x <= {target['worker_cpu_ratio_at_most']:.2f} -> {ratios}")
    if report.get("chain_reader"):
        out += ["", "ChainReader.poll CPU per record (in this process; median of rounds)"]
        out += table(CHAIN_COLUMNS, report["chain_reader"], lambda row: "")
    out += [
        "",
        f"load average {m['load_average_before']:.2f} before, {m['load_average_after']:.2f} after; "
        f"the run took {m['wall_s']:.0f} s",
    ]
    return out


def _ramp_lines(report: dict, pipelines: Sequence[str], p50_target: float, rate_target: float) -> list[str]:
    ramp = sorted(
        (t for p in pipelines for t in report["ramp"][p]),
        key=lambda t: (t["rate"], pipelines.index(t["pipeline"])),
    )
    out = table(RAMP_COLUMNS, ramp, _verdict)
    out += ["", "feeder latency by stage (us), and the worker process's CPU per update"]
    out += table(STAGE_COLUMNS, [t for t in report["ramp"]["feeder"] if "stages_us" in t], _verdict)
    if report.get("busy_poll"):
        out += ["", "feeder with busy_poll = true (a separate row: the targets are for the default mode)"]
        out += table(RAMP_COLUMNS, report["busy_poll"], _verdict)
        out += table(STAGE_COLUMNS, [t for t in report["busy_poll"] if "stages_us" in t], _verdict)
    if report.get("redundancy"):
        out += _redundancy_lines(report["redundancy"])
    summary = report["summary"]
    out += ["", "feeder vs cryptofeed at each rate both ran (x = feeder / cryptofeed)"]
    out += table(COMPARE_COLUMNS, summary["by_rate"], _both_verdicts)
    fixed = summary["targets"]["p50_ratio_at_fixed_rates"]
    met = ", ".join(f"{int(r):,}/s: {fmt(x, '.2f')}" for r, x in fixed.items()) or "not measured"
    out.append(f"target p50 x <= {p50_target:.2f} at the fixed rates -> {met}")
    best = summary["highest_sustained"]
    out.append(
        f"highest sustained rate: feeder {_best(best['feeder'])}/s, cryptofeed {_best(best['cryptofeed'])}/s, "
        f"x {fmt(best['ratio'], '.2f')} (target >= {rate_target:g}; the ladder's steps bound the resolution)"
    )
    if best["feeder"]["simulator_capped"] or best["cryptofeed"]["simulator_capped"]:
        out.append(
            "  (>= : at the next rate the simulator itself fell short, so the pipeline could not be judged there)"
        )
    ceiling = summary.get("simulator_ceiling")
    if ceiling is not None:
        above = (
            " (it sustained every rate tried: its ceiling is that or higher)"
            if ceiling["above_ladder"]
            else ""
        )
        out.append(
            f"simulator ceiling (the simulator alone into a bare raw subscriber): {fmt(ceiling['rate'])}/s{above}"
        )
    for rate, figures in summary.get("worker", {}).items():
        cells = [
            f"{name.removesuffix('_us').replace('_', ' ')} {fmt(f['value'], ',.1f')}"
            + ("" if f["at_most"] is None else f" (<= {f['at_most']:g}: {'met' if f['met'] else 'NOT met'})")
            for name, f in figures.items()
        ]
        out.append(f"worker at {int(rate):,}/s: receive -> publish " + ", ".join(cells))
    return out


REDUNDANCY_COLUMNS: list[Column] = [
    ("rate/s", 9, _get("rate"), ",.0f"),
    ("p50 us r1", 10, _get("p50_us", "1"), ",.0f"),
    ("r2", 8, _get("p50_us", "2"), ",.0f"),
    ("x", 6, _get("p50_us", "ratio"), ".2f"),
    ("p99 us r1", 10, _get("p99_us", "1"), ",.0f"),
    ("r2", 8, _get("p99_us", "2"), ",.0f"),
    ("x", 6, _get("p99_us", "ratio"), ".2f"),
    ("worker us/upd r1", 16, _get("worker_us_per_update", "1"), ",.1f"),
    ("r2", 7, _get("worker_us_per_update", "2"), ",.1f"),
    ("x", 6, _get("worker_us_per_update", "ratio"), ".2f"),
]


def _redundancy_lines(row: dict) -> list[str]:
    out = ["", "feeder with redundancy = 2 (two connections, first copy wins) next to 1, every trial"]
    trials = sorted(row["trials"], key=lambda t: (t["rate"], t.get("redundancy", 1)))
    for t in trials:
        t["pipeline"] = f"feeder r{t.get('redundancy', 1)}"
    out += table(RAMP_COLUMNS, trials, _verdict)
    out += ["", "medians per rate (x = redundancy 2 / redundancy 1)"]
    out += table(REDUNDANCY_COLUMNS, row["medians"], lambda _: "")
    return out
