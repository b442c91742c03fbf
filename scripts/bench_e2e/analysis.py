"""Joining what the simulator sent with what the strategy process received: loss, order, latency.

Pure: numpy arrays in, a dict of figures out. Rules it keeps:
- The measured window is a span of simulator send times [t0, t1). Every book notification the
  simulator sent on a subscribed channel in that span must reach the strategy process: one that did
  not is lost; one that arrived flagged GAP (the feeder saying "missed something before this") is
  counted as flagged. Either makes the trial not sustained.
- Latency is the strategy's receive time minus the simulator's send time (wall clock ns, one host), for
  the first delivery of each change_id (cryptofeed re-sends a snapshot carrying the last change_id every
  1000 deltas; that repeat is neither loss nor disorder).
- Sustained: nothing lost or flagged, nothing out of order, the simulator sent at least
  `MIN_SENT_SHARE` of the asked rate, and latency not growing: the median of the window's last
  quarter is at most `GROWTH_FACTOR` x the first quarter's + `GROWTH_SLACK_NS`, and the median is
  under `CEILING_P50_US` (a queue that built up during the warm-up and then held is not keeping up).
- A trial in which the simulator itself fell behind (it skipped updates) is "simulator short" whatever
  else went wrong: its frames waited in its own send buffer, so the pipeline cannot be judged there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_SENT_SHARE = 0.9
GROWTH_FACTOR = 2.0
GROWTH_SLACK_NS = 1_000_000
CEILING_P50_US = 50_000.0
PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p99.9": 99.9}

SUSTAINED = "sustained"
SIM_SHORT = "simulator short"  # the simulator could not produce the asked rate: says nothing of the pipeline
SIM_BOUND = "simulator-bound"  # above the rate the simulator sustains into a bare subscriber (its ceiling)


@dataclass(frozen=True)
class Received:
    """What the strategy process got: one row per record/message, in arrival order."""

    chan: np.ndarray  # int32: channel index
    cid: np.ndarray  # int64: change_id
    recv_ns: np.ndarray  # int64: wall clock when the strategy process had it
    flagged: np.ndarray  # bool: the pipeline marked it as following a loss (GAP)
    reader_lost: int = 0  # records the reader itself counted lost (lapped)
    ts_recv: np.ndarray | None = None  # int64: feeder only, when the worker received the frame
    ts_publish: np.ndarray | None = None  # int64: feeder only, when the worker published the record


STAGES = {
    "simulator send -> worker receive": ("send", "ts_recv"),
    "worker receive -> ring publish": ("ts_recv", "ts_publish"),
    "ring publish -> strategy has it": ("ts_publish", "recv"),
}


def analyse(
    sent: list[np.ndarray],
    received: Received,
    t0: int,
    t1: int,
    rate: float,
    restarts: int = 0,
    simulator_lagged: int = 0,
) -> dict:
    """Figures of one trial. `sent[c]` is an (n, 2) int64 array of [change_id, send_ns] for channel c;
    `restarts`: pipeline processes that died and were replaced during the trial; `simulator_lagged`:
    updates the simulator skipped because it fell behind its own schedule."""
    lost = flagged = disorder = total = 0
    send_times: list[np.ndarray] = []
    latencies: list[np.ndarray] = []
    stamps: dict[str, list[np.ndarray]] = {"ts_recv": [], "ts_publish": []}
    for c, rows in enumerate(sent):
        mine = np.flatnonzero(received.chan == c)
        got = _join(rows, received.cid[mine], received.recv_ns[mine], received.flagged[mine], t0, t1)
        total += got.sent
        lost += got.lost
        flagged += got.flagged
        disorder += got.disorder
        send_times.append(got.send_ns)
        latencies.append(got.latency_ns)
        if received.ts_recv is not None and received.ts_publish is not None:
            stamps["ts_recv"].append(received.ts_recv[mine[got.at]])
            stamps["ts_publish"].append(received.ts_publish[mine[got.at]])
    seconds = (t1 - t0) / 1e9
    send_ns = np.concatenate(send_times) if send_times else np.empty(0, np.int64)
    latency = np.concatenate(latencies) if latencies else np.empty(0, np.int64)
    figures = {
        "rate": rate,
        "sent": total,
        "sent_rate": total / seconds if seconds > 0 else 0.0,
        "received": int(latency.size),
        "lost": lost,
        "flagged": flagged,
        "out_of_order": disorder,
        "reader_lost": received.reader_lost,
        "restarts": restarts,
        "simulator_lagged": simulator_lagged,
        "latency_us": latency_summary(latency),
        "growth_us": growth(send_ns, latency, t0, t1),
    }
    if stamps["ts_recv"]:
        columns = {k: np.concatenate(v) for k, v in stamps.items()}
        columns.update(send=send_ns, recv=send_ns + latency)
        figures["stages_us"] = {
            stage: latency_summary(columns[end] - columns[begin]) for stage, (begin, end) in STAGES.items()
        }
    figures["verdict"] = verdict(figures)
    return figures


@dataclass(frozen=True)
class _Joined:
    sent: int
    lost: int
    flagged: int
    disorder: int
    send_ns: np.ndarray
    latency_ns: np.ndarray
    at: np.ndarray  # for each arrived update: its row among the channel's received rows


def _join(
    rows: np.ndarray, cid: np.ndarray, recv_ns: np.ndarray, flags: np.ndarray, t0: int, t1: int
) -> _Joined:
    """One channel: which sent change_ids in [t0, t1) arrived, and how late."""
    in_window = (rows[:, 1] >= t0) & (rows[:, 1] < t1)
    s_cid, s_ns = rows[in_window, 0], rows[in_window, 1]
    disorder = int(np.count_nonzero(np.diff(cid) < 0))
    if cid.size == 0:
        return _Joined(int(s_cid.size), int(s_cid.size), 0, disorder, s_ns[:0], s_ns[:0], s_ns[:0])
    unique, first = np.unique(cid, return_index=True)
    pos = np.minimum(np.searchsorted(unique, s_cid), unique.size - 1)
    found = unique[pos] == s_cid
    at = first[pos[found]]
    return _Joined(
        sent=int(s_cid.size),
        lost=int(s_cid.size - np.count_nonzero(found)),
        flagged=int(np.count_nonzero(flags[at])),
        disorder=disorder,
        send_ns=s_ns[found],
        latency_ns=recv_ns[at] - s_ns[found],
        at=at,
    )


def latency_summary(latency_ns: np.ndarray) -> dict:
    """p50/p90/p99/p99.9/max in microseconds (None when nothing arrived)."""
    if latency_ns.size == 0:
        return {name: None for name in [*PERCENTILES, "max"]}
    values = np.percentile(latency_ns, list(PERCENTILES.values())) / 1e3
    out = {name: round(float(v), 1) for name, v in zip(PERCENTILES, values, strict=True)}
    out["max"] = round(float(latency_ns.max()) / 1e3, 1)
    return out


def growth(send_ns: np.ndarray, latency_ns: np.ndarray, t0: int, t1: int) -> dict:
    """Median latency (us) of updates sent in the first and in the last quarter of the window."""
    quarter = (t1 - t0) // 4
    first = latency_ns[send_ns < t0 + quarter]
    last = latency_ns[send_ns >= t1 - quarter]
    return {
        "first_quarter_p50": round(float(np.median(first)) / 1e3, 1) if first.size else None,
        "last_quarter_p50": round(float(np.median(last)) / 1e3, 1) if last.size else None,
    }


def is_growing(g: dict) -> bool:
    first, last = g["first_quarter_p50"], g["last_quarter_p50"]
    if first is None or last is None:
        return False
    return last * 1e3 > GROWTH_FACTOR * first * 1e3 + GROWTH_SLACK_NS


def verdict(f: dict) -> str:
    """`sustained`, or every reason it was not."""
    problems = [f"{f['restarts']} pipeline restart(s)"] if f.get("restarts") else []
    if f["sent"] == 0:
        return ", ".join([*problems, "nothing sent"])
    if f["lost"] or f["reader_lost"]:
        problems.append(f"lost {f['lost'] + f['reader_lost']}")
    if f["flagged"]:
        problems.append(f"{f['flagged']} GAP")
    if f["out_of_order"]:
        problems.append(f"{f['out_of_order']} out of order")
    if is_growing(f["growth_us"]):
        problems.append("latency growing")
    elif (f["latency_us"]["p50"] or 0.0) > CEILING_P50_US:
        problems.append(f"p50 over {CEILING_P50_US / 1e3:g} ms")
    if f.get("simulator_lagged"):
        # It fell behind on its own CPU: frames waited in its send buffer, so late or growing latency
        # here is the simulator's as much as the pipeline's. Inconclusive, and the climb ends.
        return ", ".join([f"{SIM_SHORT} (skipped {f['simulator_lagged']:,})", *problems])
    if problems:
        return ", ".join(problems)
    if f["sent_rate"] < MIN_SENT_SHARE * f["rate"]:
        return SIM_SHORT
    return SUSTAINED


def mark_simulator_bound(trials: list[dict], ceiling: float | None) -> None:
    """Trials above the simulator's ceiling (None: not even its lowest rate) that were not sustained say
    so first: what failed there may be the simulator's, so it never counts as the pipeline's limit."""
    for t in trials:
        above = ceiling is None or t["rate"] > ceiling
        if above and t["verdict"] != SUSTAINED and not t["verdict"].startswith((SIM_SHORT, SIM_BOUND)):
            where = "none" if ceiling is None else f"{ceiling:,.0f}/s"
            t["verdict"] = f"{SIM_BOUND} (ceiling {where}): {t['verdict']}"


def highest_sustained(trials: list[dict]) -> dict:
    """The highest asked rate with a sustained verdict, and whether the simulator capped the climb."""
    best = None
    capped = False
    for t in sorted(trials, key=lambda t: t["rate"]):
        if t["verdict"] == SUSTAINED:
            best = t["rate"]
        elif t["verdict"].startswith((SIM_SHORT, SIM_BOUND)):
            capped = True
            break
        else:
            break
    return {"rate": best, "simulator_capped": capped}
