"""Two soak reports side by side: the same fault schedule run with one and with two connections per worker.

`compare(reports)` is pure (reports in, one dict out); `summary(comparison)` prints it. Rules kept here:
- Faults are matched by their place in the schedule (the same seed plans the same kinds at the same times;
  a fault that could not be injected in one run shows as such).
- Per fault: its kind, the blast radius, blind time (fault to the next valid record after its GAP, 0
  without one) and quiet time (the longest wait for a valid record after it) in each run.
- Per run: the verdict, GAPs, blind time over every fault and over connection faults alone (those a
  second connection is meant to absorb), end-to-end latency (simulator send to consumer read).
"""

from __future__ import annotations

from typing import Any

from soak.faults import CONNECTION_FAULTS, INSTRUMENT_FAULTS

SINGLE_CONNECTION = INSTRUMENT_FAULTS + CONNECTION_FAULTS  # faults aimed at one connection


def compare(reports: dict[int, dict]) -> dict[str, Any]:
    """{redundancy: soak report} -> the side-by-side comparison."""
    settings = sorted(reports)
    events = {r: reports[r]["faults"]["events"] for r in settings}
    rows = []
    for i in range(max(len(e) for e in events.values())):
        row: dict[str, Any] = {"n": i + 1}
        for r in settings:
            if i >= len(events[r]):
                continue
            e = events[r][i]
            row.setdefault("t_s", e.get("t_s"))
            row.setdefault("kind", e["kind"])
            row[f"r{r}"] = {
                "rings": len(e.get("rings", ())),
                "blind_s": None if "error" in e else e.get("blind_s"),
                "quiet_s": None if "error" in e else e.get("quiet_s"),
                "error": e.get("error"),
            }
        rows.append(row)
    return {"settings": settings, "faults": rows, "runs": {r: _run(reports[r]) for r in settings}}


def _run(report: dict) -> dict[str, Any]:
    events = [e for e in report["faults"]["events"] if "error" not in e]
    single = [e for e in events if e["kind"] in SINGLE_CONNECTION]
    return {
        "ok": report["ok"],
        "failures": report["failures"],
        "gap_records": report["totals"].get("gap_records"),
        "faults": len(events),
        "blind_zero": sum(1 for e in events if e.get("blind_s") == 0),
        "blind_max_s": _max(e.get("blind_s") for e in events),
        "single_connection_faults": len(single),
        "single_connection_blind_zero": sum(1 for e in single if e.get("blind_s") == 0),
        "single_connection_blind_max_s": _max(e.get("blind_s") for e in single),
        "latency_us": {
            k: report["latency"]["overall"].get(k) for k in ("count", "p50_us", "p99_us", "max_us")
        },
        "achieved_rate": report["sim"].get("achieved_rate"),
    }


def _max(values: Any) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def summary(comparison: dict) -> str:
    settings = comparison["settings"]
    head = f"{'#':>3} {'t s':>7} {'fault':<20}" + "".join(
        f"{f'blind r{r}':>10}{f'quiet r{r}':>10}" for r in settings
    )
    lines = ["faults side by side (seconds; blind: fault to the next valid record after its GAP)", head]
    for row in comparison["faults"]:
        cells = ""
        for r in settings:
            cell = row.get(f"r{r}") or {}
            if cell.get("error"):
                cells += f"{'not injected':>20}"
            else:
                cells += f"{_num(cell.get('blind_s')):>10}{_num(cell.get('quiet_s')):>10}"
        lines.append(f"{row['n']:>3} {_num(row.get('t_s')):>7} {row.get('kind', ''):<20}{cells}")
    lines.append("")
    for r in settings:
        run = comparison["runs"][r]
        lat = run["latency_us"]
        lines.append(
            f"redundancy {r}: {'PASS' if run['ok'] else 'FAIL'}; {run['gap_records']} GAP records; blind 0 after "
            f"{run['blind_zero']} of {run['faults']} faults (max {_num(run['blind_max_s'])} s), after "
            f"{run['single_connection_blind_zero']} of {run['single_connection_faults']} single-connection "
            f"faults (max {_num(run['single_connection_blind_max_s'])} s); latency send->read p50 "
            f"{_num(lat['p50_us'])} us, p99 {_num(lat['p99_us'])} us ({lat['count']} records); simulator "
            f"{_num(run['achieved_rate'])} updates/s"
        )
    return "\n".join(lines)


def _num(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) and value < 100 else f"{value:,.0f}"
