"""What the running feeder shows: a live table on a terminal, plain log lines otherwise.

`render(status)` is pure (status dict in, lines out) and shared with `python -m feeder status`.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

LIVE_EVERY_S = 1.0
PLAIN_EVERY_S = 10.0


def _num(value: object, fmt: str = "{:.2f}") -> str:
    return "-" if value is None else fmt.format(value)


def render(status: dict[str, Any]) -> list[str]:
    """The status as a table: one line per worker, one per ring."""
    lines = [
        f"feeder {status['instance']}  pid {status['pid']}  up {status['uptime_s']:.0f}s  "
        f"{'simulator ' if status.get('sim') else ''}{status['url']}",
        "",
        f"{'worker':>6} {'pid':>7} {'cpu':>3} {'cpu%':>5} {'state':<10} {'conn':<4} {'chan':>4} "
        f"{'msg/s':>8} {'p50ms':>6} {'p99ms':>6} {'score':>5} {'restarts':>8} {'gaps':>5}  last error",
    ]
    for w in status["workers"]:
        lines.append(
            f"{w['index']:>6} {w['pid'] or '-':>7} {_num(w['cpu'], '{}'):>3} {_num(w['cpu_percent'], '{:.0f}'):>5} "
            f"{w['state']:<10} {'up' if w['connected'] else 'down':<4} {len(w['rings']):>4} "
            f"{w['msgs_per_s']:>8.0f} {_num(w['latency_p50_ms']):>6} {_num(w['latency_p99_ms']):>6} "
            f"{w['score']:>5} {w['restarts']:>8} {w['gaps']:>5}  {w['last_error'] or ''}"
        )
        lines += [_leg(leg) for leg in w.get("legs", ())]
    lines += [
        "",
        f"{'ring':<28} {'type':<6} {'write seq':>10} {'rec/s':>8} {'epoch':>5} {'writer':>8} {'age s':>7} {'gaps':>5}"
        f" {'silent s':>13}  {'audits ok/fail/unverif':>22} {'last ok s':>9}",
    ]
    for r in status["rings"]:
        age = r.get("last_publish_age_s")
        writer = f"{r['writer_pid']}" if r.get("writer_alive") else "-"
        lines.append(
            f"{r['name']:<28} {r['record_type']:<6} {r['write_seq']:>10} {_num(r.get('rate'), '{:.0f}'):>8} "
            f"{r['epoch']:>5} {writer:>8} {_num(age, '{:.1f}'):>7} {r.get('gaps', 0):>5} {_silence(r):>13}"
            f"{_audits(r.get('audits'))}"
        )
    limits = status.get("rate_limits")
    if limits:
        m, n = limits["matching"], limits["non_matching"]
        lines += [
            "",
            f"rate limits: {limits['why']}; matching engine {m['rate']:g}/s (burst {m['burst']:g}), "
            f"other requests {n['rate']:g}/s (burst {n['burst']:g})",
        ]
    return lines


def _leg(leg: dict[str, Any]) -> str:
    """A redundant connection under its worker: its own state and score, and how it fares (over the last
    second: share of the changes it brought first, how far behind the winner its late copies came)."""
    share = leg.get("win_share")
    lead = "-" if share is None else f"{100 * share:.0f}%"
    return (
        f"{'leg ' + leg['name']:>6} {'':>7} {'':>3} {'':>5} {leg['state']:<10} {'up' if leg['connected'] else 'down':<4} "
        f"{leg['books_joined']:>4} {'':>8} {_num(leg['latency_p50_ms']):>6} {_num(leg['latency_p99_ms']):>6} "
        f"{leg['score']:>5}  first {lead:>4}, behind p50 {_num(leg.get('behind_p50_us'), '{}')} us "
        f"p99 {_num(leg.get('behind_p99_us'), '{}')} us, wins {leg['wins']} losses {leg['losses']}, "
        f"reconnects {leg['reconnects']}"
    )


def _silence(r: dict[str, Any]) -> str:
    """Seconds since the ring's channel last carried a message; a ring of several channels (a chain ring):
    its freshest/its quietest channel."""
    low, high = r.get("silence_s"), r.get("silence_max_s")
    if low is None or high is None:
        return "-"
    return f"{low:.1f}" if high == low else f"{low:.1f}/{high:.1f}"


def _audits(a: dict[str, Any] | None) -> str:
    """A book ring's audit columns (empty for other rings)."""
    if not a:
        return ""
    counts = f"{a['passed']}/{a['failed']}/{a['unverifiable']}"
    return f"  {counts:>22} {_num(a.get('last_passed_age_s'), '{:.0f}'):>9}"


def summary_line(status: dict[str, Any]) -> str:
    """One log line: workers up, messages per second, restarts, gaps."""
    workers = status["workers"]
    up = sum(1 for w in workers if w["state"] == "running" and w["connected"])
    return (
        f"feeder {status['instance']}: {up}/{len(workers)} workers connected, "
        f"{sum(w['msgs_per_s'] for w in workers):.0f} msg/s, "
        f"{sum(w['restarts'] for w in workers)} restarts, {sum(w['gaps'] for w in workers)} gaps, "
        f"{len(status['rings'])} rings"
    )


async def run_display(get_status: Callable[[], dict[str, Any]], mode: str) -> None:
    """Redraw the live view every second on a terminal; otherwise print a summary every 10 s."""
    live = mode == "live" or (mode == "auto" and sys.stdout.isatty())
    while True:
        await asyncio.sleep(LIVE_EVERY_S if live else PLAIN_EVERY_S)
        status = get_status()
        if live:
            sys.stdout.write("\x1b[H\x1b[2J" + "\n".join(render(status)) + "\n")
        else:
            sys.stdout.write(summary_line(status) + "\n")
        sys.stdout.flush()
