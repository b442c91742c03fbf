"""From a finished run to soak-report.json, a one-screen summary and a PNG.

Loads the truth log and the consumers' observation logs, runs the pure analysis over them and puts
the results in one JSON-serialisable dict. Rules kept here:
- Latency headline figures come from consumers that were never paused (the slow consumer's
  deliberate pauses would only measure the pause); the slow consumer's figures are reported apart.
- Recovery is measured on consumer 0's view (never paused), from the fault to the ring's next valid
  SNAPSHOT (publish time), for faults that made a ring GAP before the next fault; blind time (fault to
  the next valid record after its GAP, 0 without one) and quiet time for every fault, on the same view. A phantom fault is
  detected when its ring got a GAP before the next fault; the records it made wrong until then are
  reported as phantom-exposed, not as wrong books (only the live audit can see a phantom).
- Trades are checked on consumer 0's view of the trades rings (soak.trades); audit totals come from
  the feeder's last status (the supervisor adds them up across worker restarts).
- The PNG needs matplotlib (the `plot` extra); without it the report says why there is no PNG.
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from feeder.exchanges.deribit.channels import ChannelConfig, ChannelMap
from soak import analysis, trades
from soak.faults import PHANTOMS
from soak.observations import load_observations, load_trades, read_summary
from soak.run import RunData
from soak.truth import NO_TRADES, BookTruth, Truth, book_truth, load_truth

EMPTY_TRUTH = book_truth([], [], [])


def _process_starts(run: RunData) -> dict[str, float]:
    """Every process the monitor saw, by role/pid, with its start time: a later check of "is it still
    running" must compare start times, because a busy machine reuses pids within seconds."""
    if run.monitor is None:
        return {}
    return {
        f"{run.monitor.role_of.get(pid, role)}/{pid}": created
        for pid, (role, created) in run.monitor.seen.items()
    }


def build(run: RunData) -> dict[str, Any]:
    """The whole report of a run."""
    truth = load_truth(run.truth_path) if run.truth_path.is_file() else Truth({}, {})
    channels = ChannelMap(ChannelConfig(), authenticated=True)
    routes = {ring: channels.route(ring) for ring in run.rings}
    books = {ring: truth.books.get(route.instrument, EMPTY_TRUTH) for ring, route in routes.items()}
    views = [_split(load_observations(p), run.rings) if p.is_file() else {} for p in run.consumer_logs]
    summaries = [read_summary(p) or {} for p in run.consumer_summaries]
    phantoms = _phantoms(run, views, books)
    windows: dict[str, list[tuple[int, int]]] = {}
    for p in phantoms:
        windows.setdefault(p["ring"], []).append(p["window"])
    checks = [_check(view, books, routes, windows) for view in views]
    rings = {
        ring: _ring(routes[ring], truth, books[ring], [c[ring] for c in checks if ring in c], summaries)
        for ring in run.rings
    }
    run_s = (run.end_ns - run.t0_ns) / 1e9  # samples during shutdown say nothing about leaks
    samples = [s for s in run.monitor.final_samples() if s.t_s <= run_s] if run.monitor else []
    processes = analysis.resources(samples, analysis.LeakRule(run.options.warmup_s, run.options.leak_mib))
    leftovers = {"processes": run.leftover_processes, "segments": run.leftover_segments}
    paused = _paused_consumer(run)
    trade_checks = _trades(run, truth)
    report = {
        "config": _config(run),
        "totals": _totals(rings, run),
        "trades": trade_checks,
        "phantoms": [{k: v for k, v in p.items() if k != "window"} for p in phantoms],
        "audits": _audits(run),
        "rings": rings,
        "consumers": _consumers(run, checks, summaries, paused),
        "faults": _faults(run, views, books),
        "latency": _latency(run, views, truth, routes, paused),
        "processes": processes,
        "leftovers": leftovers,
        "process_starts": _process_starts(run),
        "sim": _sim(run),
        "series": _series(run, views),
        "failures": analysis.failures(
            rings, processes, leftovers, run.errors + _run_errors(run, rings), trade_checks, phantoms
        ),
    }
    report["ok"] = not report["failures"]
    return report


def _check(
    view: dict[str, np.ndarray], books: dict[str, BookTruth], routes: dict, windows: dict[str, list]
) -> dict:
    """One consumer's rings checked against the truth (raw channels: one record per change)."""
    return {
        ring: analysis.check_ring(
            obs, books[ring], not routes[ring].channel.endswith(".raw"), windows.get(ring, [])
        )
        for ring, obs in view.items()
    }


def _phantoms(run: RunData, views: list[dict], books: dict[str, BookTruth]) -> list[dict]:
    """Each phantom fault injected: its ring, whether a GAP found it before the next fault, how soon."""
    timelines = {
        ring: analysis.timeline(obs, books[ring]) for ring, obs in (views[0] if views else {}).items()
    }
    out = []
    for i, fault in enumerate(run.faults):
        if fault["kind"] not in PHANTOMS or "error" in fault or not fault["rings"]:
            continue
        ring = fault["rings"][0]
        until = run.faults[i + 1]["t_ns"] if i + 1 < len(run.faults) else run.end_ns
        found = analysis.phantom_windows(fault["t_ns"], until, timelines.get(ring))
        out.append(
            {
                "kind": fault["kind"],
                "ring": ring,
                "t_s": fault["t_s"],
                "detected": found is not None,
                "shown": analysis.phantom_shown(fault["t_ns"], until, timelines.get(ring)),
                "detect_s": round((found[1] - found[0]) / 1e9, 3) if found else None,
                "window": found or (fault["t_ns"], until),
            }
        )
    return out


def _trades(run: RunData, truth: Truth) -> dict[str, dict]:
    """Consumer 0's trades rings checked against the exchange's trades."""
    if run.trade_log is None or not run.trade_log.is_file():
        return {}
    obs = load_trades(run.trade_log)
    channels = ChannelMap(ChannelConfig(), authenticated=True)
    out = {}
    for i, ring in enumerate(run.trade_rings):
        instrument = channels.route(ring).instrument
        out[ring] = trades.check_trades(
            obs[obs["ring"] == i], truth.trades.get(instrument, NO_TRADES)
        ).as_dict()
    return out


def _audits(run: RunData) -> dict:
    """The live audits, per book ring and in total, from the feeder's last status."""
    rings = {r["name"]: r["audits"] for r in run.final_status.get("rings", []) if r.get("audits")}
    keys = ("passed", "failed", "unverifiable", "crossed")
    return {"totals": {k: sum(a.get(k, 0) for a in rings.values()) for k in keys}, "rings": rings}


def _split(obs: np.ndarray, rings: list[str]) -> dict[str, np.ndarray]:
    return {ring: obs[obs["ring"] == i] for i, ring in enumerate(rings)}


def _ring(route: Any, truth: Truth, book: BookTruth, mine: list, summaries: list[dict]) -> dict:
    ring = route.ring
    stats = [s.get("rings", {}).get(ring, {}) for s in summaries]
    return {
        "instrument": route.instrument,
        "channel": route.channel,
        "published_total": len(book.change_id),
        "sent_to_feeder": len(truth.sends[route.channel].change_id) if route.channel in truth.sends else 0,
        "written": max((s.get("write_seq", 0) for s in stats), default=0),
        "read": [c.records for c in mine],
        "reader_lost": [s.get("lost") for s in stats],
        **analysis.merge_checks(mine),
    }


def _totals(rings: dict[str, dict], run: RunData) -> dict:
    keys = (
        "published_total",
        "published_in_window",
        "sent_to_feeder",
        "written",
        "gap_records",
        "undetected",
        "wrong_books",
        "out_of_order",
        "phantom_exposed",
    )
    out = {k: sum(r[k] for r in rings.values()) for k in keys}
    out["read"] = [
        sum(r["read"][i] for r in rings.values() if i < len(r["read"])) for i in range(run.options.consumers)
    ]
    out["reader_lost"] = [
        sum((r["reader_lost"][i] or 0) for r in rings.values() if i < len(r["reader_lost"]))
        for i in range(run.options.consumers)
    ]
    seconds = max((run.end_ns - run.t0_ns) / 1e9, 1e-9)
    out["run_s"] = round(seconds, 1)
    if run.monitor is not None:
        out.update(run.monitor.snapshot())
    return out


def _paused_consumer(run: RunData) -> int | None:
    """The consumer that was paused on purpose (None if no slow_consumer fault went through)."""
    paused = any(f["kind"] == "slow_consumer" and "error" not in f for f in run.faults)
    return run.slow_consumer if paused else None


def _consumers(run: RunData, checks: list[dict], summaries: list[dict], paused: int | None) -> list[dict]:
    out = []
    for i, (check, summary) in enumerate(zip(checks, summaries, strict=False)):
        out.append(
            {
                "index": i,
                "paused_on_purpose": i == paused,
                "exit": summary.get("exit"),
                "exit_code": run.consumer_exits[i] if i < len(run.consumer_exits) else None,
                "rings": {ring: c.as_dict() for ring, c in check.items()},
            }
        )
    return out


def _run_errors(run: RunData, rings: dict[str, dict]) -> list[str]:
    """A run that did not really happen must not pass."""
    out = []
    if run.feeder_exit not in (0, None):
        out.append(f"the feeder exited with code {run.feeder_exit}")
    for name, ring in rings.items():
        if not ring["read"] or min(ring["read"]) == 0:
            out.append(f"{name}: a consumer read no records")
    for i, code in enumerate(run.consumer_exits):
        if code != 0:
            out.append(f"consumer {i} exited with code {code}")
    return out


def _config(run: RunData) -> dict:
    o = run.options
    return {
        "duration_s": o.duration,
        "rate_asked": o.rate,
        "workers": o.workers,
        "redundancy": o.redundancy,
        "consumers": o.consumers,
        "faults_asked": o.faults,
        "fault_kinds": list(o.kinds),
        "instruments": run.instruments,
        "streams": o.streams,
        "seed": o.seed,
        "book_capacity": o.book_capacity,
        "hang_timeout_s": o.hang_timeout,
        "warmup_s": o.warmup_s,
        "leak_rule": f"RSS growth after {o.warmup_s:g} s > max({o.leak_mib:g} MiB, 25% of baseline)",
        "instance": run.instance,
        "cpus": os.cpu_count(),
        "loadavg_start_end": [round(x, 2) for x in run.loadavg],
        "slow_consumer": run.slow_consumer,
    }


def _faults(run: RunData, views: list[dict], books: dict[str, BookTruth]) -> dict:
    timelines = {
        ring: analysis.timeline(obs, books[ring]) for ring, obs in (views[0] if views else {}).items()
    }
    events = []
    for i, fault in enumerate(run.faults):
        until = run.faults[i + 1]["t_ns"] if i + 1 < len(run.faults) else run.end_ns
        events.append(
            {
                **fault,
                **analysis.recovery(fault["t_ns"], until, fault["rings"], timelines),
                **analysis.blind(fault["t_ns"], until, fault["rings"], timelines),
            }
        )
    times = [e["recovery_s"] for e in events if e["disrupted"] and e["recovery_s"] is not None]
    blind = [e["blind_s"] for e in events if "error" not in e and e["blind_s"] is not None]
    return {
        "blind_zero": sum(1 for b in blind if b == 0),
        "blind_p50_s": round(float(np.median(blind)), 3) if blind else None,
        "blind_max_s": round(max(blind), 3) if blind else None,
        "injected": len(events),
        "failed_to_inject": sum(1 for e in events if "error" in e),
        "disrupting": sum(1 for e in events if e["disrupted"]),
        "unrecovered": sum(1 for e in events if e["disrupted"] and not e["recovered"]),
        "restarts_asked": sum(1 for e in events if "error" not in e and _restarts(e)),
        "recovery_p50_s": round(float(np.median(times)), 3) if times else None,
        "recovery_max_s": round(max(times), 3) if times else None,
        "by_kind": _by_kind(events),
        "events": events,
    }


def _by_kind(events: list[dict]) -> dict[str, dict]:
    """Per fault kind: how many, and detection (fault to the first GAP) beside recovery (to the next
    SNAPSHOT) and blind time, p50 and max over the faults of that kind that made a ring GAP."""
    out: dict[str, dict] = {}
    for kind in sorted({e["kind"] for e in events}):
        mine = [e for e in events if e["kind"] == kind and "error" not in e]
        row: dict[str, Any] = {"faults": len(mine), "disrupting": sum(1 for e in mine if e["disrupted"])}
        for key in ("detect_s", "recovery_s", "blind_s"):
            values = [e[key] for e in mine if e.get(key) is not None and (key == "blind_s" or e["disrupted"])]
            row[f"{key[:-2]}_p50_s"] = round(float(np.median(values)), 3) if values else None
            row[f"{key[:-2]}_max_s"] = round(max(values), 3) if values else None
        out[kind] = row
    return out


def _restarts(event: dict) -> bool:
    """Whether a fault was meant to make the supervisor replace a worker."""
    params = event.get("params") or {}
    return event["kind"] == "kill_worker" or bool(params.get("beyond_hang_timeout"))


def _latency(run: RunData, views: list[dict], truth: Truth, routes: dict, paused: int | None) -> dict:
    normal: list[tuple[np.ndarray, np.ndarray]] = []
    slow: list[tuple[np.ndarray, np.ndarray]] = []
    stages: dict[str, list[np.ndarray]] = {"send_to_recv": [], "recv_to_publish": [], "publish_to_read": []}
    for i, view in enumerate(views):
        for ring, obs in view.items():
            sent = analysis.send_times(obs, truth.sends.get(routes[ring].channel))
            ok = sent >= 0
            o = obs[ok]
            pair = (o["read_ns"], o["read_ns"] - sent[ok])
            (slow if i == paused else normal).append(pair)
            if i != paused:
                stages["send_to_recv"].append(o["ts_recv"] - sent[ok])
                stages["recv_to_publish"].append(o["ts_publish"] - o["ts_recv"])
                stages["publish_to_read"].append(o["read_ns"] - o["ts_publish"])
    read_ns, lat = _concat(normal)
    _, slow_lat = _concat(slow)
    return {
        "measured": "simulator send (truth log) -> consumer read, wall clock",
        "overall": analysis.percentiles_us(lat),
        "stages": {
            k: analysis.percentiles_us(np.concatenate(v) if v else np.zeros(0)) for k, v in stages.items()
        },
        "windows": analysis.windows((read_ns - run.t0_ns) / 1e9, lat, run.options.window_s),
        "slow_consumer": analysis.percentiles_us(slow_lat),
    }


def _concat(pairs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    if not pairs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])


def _sim(run: RunData) -> dict:
    s = run.sim_stats
    seconds = max((run.end_ns - run.t0_ns) / 1e9, 1e-9)
    series = run.monitor.sim_series if run.monitor else []
    achieved = None
    if len(series) >= 2:
        achieved = (series[-1]["changes_total"] - series[0]["changes_total"]) / (
            series[-1]["t_s"] - series[0]["t_s"]
        )
    return {
        "changes_total": s.get("changes_total"),
        "achieved_rate": round(achieved, 1) if achieved is not None else None,
        "lagged_updates": s.get("lagged_updates"),
        "lagged_per_s": round((s.get("lagged_updates") or 0) / seconds, 1),
        "connections_total": s.get("counters", {}).get("connections_total"),
        "slow_consumer_resets": s.get("counters", {}).get("slow_consumer_resets", 0),
        "faults_applied": s.get("faults", {}),
    }


def _series(run: RunData, views: list[dict]) -> dict:
    """Per-second figures for the plot: records read per consumer, simulator changes, and RSS and CPU
    per role and pid (`rss_mib[role][pid]`: a restarted worker is a new pid of the same role)."""
    out: dict[str, Any] = {"read_per_s": {}, "sim_changes_per_s": [], "rss_mib": {}, "cpu_pct": {}}
    for i, view in enumerate(views):
        if view:
            t = (np.concatenate([v["read_ns"] for v in view.values()]) - run.t0_ns) / 1e9
            t = t[t >= 0]
            counts = np.bincount(t.astype(np.int64)) if len(t) else np.zeros(0, np.int64)
            out["read_per_s"][f"consumer{i}"] = counts.tolist()
    series = run.monitor.sim_series if run.monitor else []
    for a, b in itertools.pairwise(series):
        if b["t_s"] > a["t_s"]:
            rate = (b["changes_total"] - a["changes_total"]) / (b["t_s"] - a["t_s"])
            out["sim_changes_per_s"].append([b["t_s"], round(rate, 1)])
    for s in run.monitor.final_samples() if run.monitor else []:
        out["rss_mib"].setdefault(s.role, {}).setdefault(str(s.pid), []).append(
            [s.t_s, round(s.rss / 2**20, 1)]
        )
        out["cpu_pct"].setdefault(s.role, {}).setdefault(str(s.pid), []).append([s.t_s, s.cpu])
    return out


# --- output ---------------------------------------------------------------------------------------


def dumps(report: dict, series: bool = True) -> str:
    """The report as JSON text (without the per-second series unless `series`)."""
    shown = report if series else {k: v for k, v in report.items() if k != "series"}
    return json.dumps(shown, indent=1, default=_jsonable)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def summary(report: dict) -> str:
    """The one-screen summary."""
    c, t, f, lat, sim = report["config"], report["totals"], report["faults"], report["latency"], report["sim"]
    lines = [
        f"soak: {t['run_s']:g} s, {c['workers']} workers x {c.get('redundancy', 1)} connections, {len(c['instruments'])} instruments, "
        f"{c['consumers']} consumers, {f['injected']} faults ({f['failed_to_inject']} not injectable)",
        f"rate: asked {c['rate_asked']:,.0f}/s, simulator achieved {_num(sim['achieved_rate'])}/s "
        f"(lagged {_num(sim['lagged_per_s'])}/s), slow-consumer resets by the simulator "
        f"{sim['slow_consumer_resets']}; machine: {c['cpus']} CPUs, load average "
        f"{' -> '.join(str(x) for x in c['loadavg_start_end'])}",
        "",
        f"{'ring':<18}{'published':>10}{'sent':>10}{'written':>10}{'read (per consumer)':>26}"
        f"{'lost(rd)':>9}{'GAPs':>6}{'undet':>6}{'wrong':>6}",
    ]
    for name, r in report["rings"].items():
        lines.append(_ring_line(name, r))
    lines.append(_ring_line("total", {**t, "read": t["read"], "reader_lost": t["reader_lost"]}))
    rec = (
        f"recovery p50 {_num(f['recovery_p50_s'])} s, max {_num(f['recovery_max_s'])} s; blind 0 after "
        f"{f['blind_zero']} of {f['injected'] - f['failed_to_inject']}, max {_num(f['blind_max_s'])} s"
    )
    lines += [
        "",
        f"faults: {f['disrupting']} made a ring GAP, {f['unrecovered']} unrecovered; {rec}; "
        f"reconnects {t.get('reconnects', '?')}, worker restarts {t.get('worker_restarts', '?')} "
        f"({f['restarts_asked']} asked by kill/stop faults)",
        _latency_line("latency send->read (us)", lat["overall"]),
    ]
    lines[-1:-1] = _trust_lines(report)
    lines[-1:-1] = _kind_lines(f["by_kind"])
    lines += [_latency_line(f"  {name}", stage) for name, stage in lat["stages"].items()]
    lines.append(_latency_line("  slow consumer", lat["slow_consumer"]))
    lines += _process_lines(report["processes"])
    left = report["leftovers"]
    lines.append(f"leftovers: {len(left['processes'])} processes, {len(left['segments'])} segments")
    lines.append("")
    if report["ok"]:
        lines.append(
            "PASS: no undetected loss, no wrong book, no duplicate trade, every phantom detected, no leak, "
            "nothing left behind"
        )
    else:
        lines.append("FAIL:")
        lines += [f"  - {why}" for why in report["failures"][:15]]
        if len(report["failures"]) > 15:
            lines.append(f"  ... and {len(report['failures']) - 15} more (see soak-report.json)")
    return "\n".join(lines)


def _kind_lines(by_kind: dict[str, dict]) -> list[str]:
    lines = [
        f"  {'fault':<20}{'n':>4}{'GAPd':>6}{'detect p50':>12}{'max':>8}{'recover p50':>13}{'max':>8}"
        f"{'blind max':>11}"
    ]
    for kind, r in by_kind.items():
        lines.append(
            f"  {kind:<20}{r['faults']:>4}{r['disrupting']:>6}{_s(r['detect_p50_s']):>12}"
            f"{_s(r['detect_max_s']):>8}{_s(r['recovery_p50_s']):>13}{_s(r['recovery_max_s']):>8}"
            f"{_s(r['blind_max_s']):>11}"
        )
    return lines


def _trust_lines(report: dict) -> list[str]:
    """Audits, phantoms and trades, one line each."""
    a = report["audits"]["totals"]
    phantoms = report["phantoms"]
    found = [p for p in phantoms if p["detected"]]
    exposed = sum(r.get("phantom_exposed", 0) for r in report["rings"].values())
    slowest = max((p["detect_s"] for p in found), default=None)
    lines = [
        f"audits: {a['passed']} passed, {a['failed']} failed, {a['unverifiable']} unverifiable; crossed books "
        f"{a['crossed']}; phantoms: "
        f"{len(found)}/{len(phantoms)} detected (slowest {'n/a' if slowest is None else f'{slowest:.2f}'} s, "
        f"{exposed} records exposed before)",
    ]
    t = report["trades"]
    if t:
        total = {k: sum(r[k] for r in t.values()) for k in next(iter(t.values()))}
        lines.append(
            f"trades: {total['trades']:,} read, {total['markers']} markers, {total['duplicates']} duplicates, "
            f"{total['wrong']} wrong, {total['undetected']} missed unflagged; volume read {total['volume_read']:,.1f}"
            f" = exchange's {total['volume_of_read']:,.1f} (window {total['volume_in_window']:,.1f}, flagged "
            f"missing {total['volume_missed_flagged']:,.1f})"
        )
    return lines


def _ring_line(name: str, r: dict) -> str:
    read = "/".join(f"{n:,}" for n in r["read"])
    lost = sum(x or 0 for x in r["reader_lost"])
    return (
        f"{name:<18}{r['published_in_window']:>10,}{r['sent_to_feeder']:>10,}{r['written']:>10,}{read:>26}"
        f"{lost:>9,}{r['gap_records']:>6}{r['undetected']:>6}{r['wrong_books']:>6}"
    )


def _latency_line(label: str, p: dict) -> str:
    if not p["count"]:
        return f"{label}: no samples"
    return (
        f"{label}: p50 {p['p50_us']:,.0f}  p99 {p['p99_us']:,.0f}  p99.9 {p['p999_us']:,.0f}  "
        f"max {p['max_us']:,.0f}  (n={p['count']:,})"
    )


def _process_lines(processes: dict[str, dict]) -> list[str]:
    by_role: dict[str, list[dict]] = {}
    for name, p in processes.items():
        by_role.setdefault(name.split("/")[0], []).append(p)
    lines = ["processes (RSS MiB start -> end, growth after warm-up, CPU % mean):"]
    for role, procs in sorted(by_role.items()):
        judged = [p for p in procs if p["judged"]]
        growth = max((p["growth_mib"] for p in judged), default=None)
        lines.append(
            f"  {role:<17}{len(procs)} pid(s)  {procs[0]['rss_start_mib']:.0f} -> {procs[-1]['rss_end_mib']:.0f}"
            f"  growth {_num(growth)}  cpu {sum(p['cpu_mean_pct'] for p in procs) / len(procs):.0f}"
            f"{'  LEAK' if any(p['leak'] for p in procs) else ''}"
        )
    return lines


def _s(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f}"


# --- the picture ----------------------------------------------------------------------------------


def plot(report: dict, path: Path) -> str | None:
    """Write the PNG; returns why not when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install 'feeder[plot]'): no PNG"
    fig, axes = plt.subplots(4, 1, figsize=(12, 12), sharex=True)
    _plot_latency(axes[0], report["latency"]["windows"])
    _plot_rates(axes[1], report["series"])
    _plot_by_role(axes[2], report["series"]["rss_mib"], "RSS (MiB)")
    _plot_by_role(axes[3], report["series"]["cpu_pct"], "CPU (% of one core)")
    for ax in axes:
        for fault in report["faults"]["events"]:
            ax.axvline(fault["t_s"], color="red", alpha=0.3, linewidth=0.8)
        ax.grid(alpha=0.3)
    for fault in report["faults"]["events"]:
        axes[0].annotate(fault["kind"], (fault["t_s"], 1), xycoords=("data", "axes fraction"), rotation=90,
                         fontsize=6, va="top", color="red")  # fmt: skip
    axes[-1].set_xlabel("seconds since start")
    verdict = "PASS" if report["ok"] else "FAIL"
    c = report["config"]
    fig.suptitle(f"feeder soak: {verdict}; {c['rate_asked']:,.0f} updates/s asked, {c['workers']} workers")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None


def _plot_latency(ax: Any, windows: list[dict]) -> None:
    t = [w["t_s"] for w in windows]
    for key in ("p50_us", "p99_us", "p999_us", "max_us"):
        ax.plot(t, [w[key] for w in windows], label=key.replace("_us", ""), drawstyle="steps-post")
    ax.set_yscale("log")
    ax.set_ylabel("send -> read (us)")
    ax.legend(fontsize=7, loc="upper left")


def _plot_rates(ax: Any, series: dict) -> None:
    sim = series["sim_changes_per_s"]
    if sim:
        ax.plot([s[0] for s in sim], [s[1] for s in sim], label="simulator changes/s", color="black")
    for name, counts in series["read_per_s"].items():
        ax.plot(range(len(counts)), counts, label=f"{name} records/s", alpha=0.7)
    ax.set_ylabel("per second")
    ax.legend(fontsize=7, loc="upper left")


def _plot_by_role(ax: Any, series: dict[str, dict[str, list]], label: str) -> None:
    """One colour and one legend entry per role; one line per pid (restarts show as new lines)."""
    for i, (role, by_pid) in enumerate(sorted(series.items())):
        for k, points in enumerate(by_pid.values()):
            ax.plot([p[0] for p in points], [p[1] for p in points], color=f"C{i % 10}", linewidth=0.8,
                    label=role if k == 0 else None)  # fmt: skip
    ax.set_ylabel(label)
    ax.legend(fontsize=6, loc="upper left", ncol=4)
