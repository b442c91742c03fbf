"""The soak's verdicts, computed from data only: observations and the simulator's truth in, findings out.

No I/O here, so tests/test_soak.py checks these functions on small constructed inputs (a dropped
update with no GAP must come out as undetected, a wrong top-10 as a wrong book): that is how we know
the soak can fail. Definitions, per ring and per consumer, walking its records in ring order:

- Each pair of consecutive records (a, b) accounts for the truth's changes in (a.change_id, b.change_id]:
  - b's own change_id is *reflected* by b, unless b is GAP;
  - the changes strictly between are *reader_lost* when the consumer did not get some ring records
    (b.seq != a.seq + 1: its reader was lapped, or a writer died mid-publish and left a torn slot;
    either way `RingReader.lost` counted them); *gap_covered* when a GAP record
    came since the last SNAPSHOT (a GAP covers everything up to the next SNAPSHOT) or b is GAP;
  - otherwise b claims continuity and every change in between is *undetected*, except, on aggregated
    channels (100ms), the changes a change record b reflects by the exchange's own aggregation,
    (b.prev_change_id, b.change_id]. On raw channels one record reflects one change, whatever its
    prev_change_id says, so a record that papers over a hole with a rewritten prev is still caught.
- A *wrong book* is a non-GAP record whose top-10 hash differs from the truth at its change_id, or whose
  change_id the exchange never published (the change_id before the instrument's first change cannot
  be checked: counted as unverifiable).
- *Out of order*: a record claiming continuity whose change_id goes back (or repeats, for a change),
  or that chains onto a change_id older than the previous record's.
- A *phantom* fault puts a level the truth lacks into a correctly chained message: by design only the
  live audit can find it, so the non-GAP records between the fault and the ring's next GAP are wrong
  and expected: they are counted as *phantom_exposed* (and the phantom as detected), not as wrong
  books; a phantom shown (a wrong record) with no GAP after it before the next fault is a failure. One
  never shown (with two connections the good copy may win) needs no detection.
- *Blind time* per fault (`blind`): from the fault to the next valid record after the GAP it caused on
  the books of its blast radius, 0 when it caused none; *quiet time*: the longest wait for a valid
  record after it.
- Trades are checked in `soak.trades`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from feeder import GAP, SNAPSHOT
from soak.truth import BookTruth, Sends

SAMPLES_KEPT = 10


@dataclass
class RingCheck:
    """One consumer's view of one ring, checked against the truth."""

    records: int = 0
    snapshots: int = 0
    gaps: int = 0  # GAP records
    reader_lost: int = 0  # ring records this consumer never got (seq jumps)
    published: int = 0  # truth changes in the window the consumer saw
    reflected: int = 0
    gap_covered: int = 0
    reader_lost_updates: int = 0
    undetected_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    undetected_at: list[dict] = field(default_factory=list)  # the first few places
    wrong_seqs: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    wrong_at: list[dict] = field(default_factory=list)
    unverifiable: int = 0
    out_of_order_seqs: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    records_in_gap: int = 0  # non-SNAPSHOT records published while the book was flagged GAP
    phantom_exposed: int = 0  # wrong records between a phantom fault and the GAP that found it

    def as_dict(self) -> dict:
        return {
            "records": self.records,
            "snapshots": self.snapshots,
            "gap_records": self.gaps,
            "reader_lost": self.reader_lost,
            "published_in_window": self.published,
            "reflected": self.reflected,
            "gap_covered": self.gap_covered,
            "reader_lost_updates": self.reader_lost_updates,
            "undetected": len(self.undetected_ids),
            "undetected_at": self.undetected_at,
            "wrong_books": len(self.wrong_seqs),
            "wrong_at": self.wrong_at,
            "unverifiable": self.unverifiable,
            "out_of_order": len(self.out_of_order_seqs),
            "records_in_gap": self.records_in_gap,
            "phantom_exposed": self.phantom_exposed,
        }


def flag_masks(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(gap, snapshot) masks; a record flagged both counts as GAP."""
    flags = obs["flags"]
    gap = (flags & GAP) != 0
    return gap, ((flags & SNAPSHOT) != 0) & ~gap


def verify_books(obs: np.ndarray, truth: BookTruth) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(matches, wrong, unverifiable) masks: each record's top-10 hash against the truth at its change_id."""
    ids, cid = truth.change_id, obs["change_id"]
    if len(ids) == 0:
        found = np.zeros(len(obs), bool)
        matches = found.copy()
    else:
        idx = np.minimum(np.searchsorted(ids, cid), len(ids) - 1)
        found = ids[idx] == cid
        matches = found & (truth.hash[idx] == obs["hash"])
    unverifiable = ~found & (cid == truth.initial)
    return matches, ~matches & ~unverifiable, unverifiable


def in_gap_after(gap: np.ndarray, snapshot: np.ndarray, skipped: np.ndarray) -> np.ndarray:
    """Per record: is the book flagged GAP after it? A GAP sets it, a SNAPSHOT clears it; after records
    the consumer skipped, the first record it reads decides."""
    n = len(gap)
    event = gap | snapshot
    event[1:] |= skipped
    last = np.maximum.accumulate(np.where(event, np.arange(n), -1))
    return np.where(last >= 0, gap[np.maximum(last, 0)], False)


def check_ring(
    obs: np.ndarray,
    truth: BookTruth,
    aggregated: bool = False,
    phantoms: Sequence[tuple[int, int]] = (),
) -> RingCheck:
    """Account for every truth change in the window of `obs` (one consumer, one ring, in read order);
    `aggregated`: the ring is fed by an aggregated (100ms) channel, not a raw one; `phantoms`: the
    (fault, detection) publish-time windows of phantom faults on this ring."""
    gap, snap = flag_masks(obs)
    _, wrong, unverifiable = verify_books(obs, truth)
    wrong &= ~gap
    exposed = np.zeros(len(obs), bool)
    for lo, hi in phantoms:
        exposed |= wrong & (obs["ts_publish"] >= lo) & (obs["ts_publish"] < hi)
    wrong &= ~exposed
    seq = obs["seq"]
    check = RingCheck(
        records=len(obs),
        snapshots=int(snap.sum()),
        gaps=int(gap.sum()),
        wrong_seqs=seq[wrong],
        wrong_at=_wrong_at(obs[wrong], truth),
        unverifiable=int((unverifiable & ~gap).sum()),
        phantom_exposed=int(exposed.sum()),
    )
    if len(obs) < 2:
        return check
    cid, prev = obs["change_id"], obs["prev_change_id"]
    check.published = int(truth.count_in(cid[0], cid.max()))
    skipped = seq[1:] != seq[:-1] + 1
    gapped = in_gap_after(gap, snap, skipped)
    a, b = cid[:-1], cid[1:]
    b_gap, b_snap, b_prev = gap[1:], snap[1:], prev[1:]
    covered = ~skipped & (gapped[:-1] | b_gap)
    claims = ~skipped & ~covered
    between = truth.count_in(a, b - 1)
    own = truth.count_in(b - 1, b) * (b > a)
    missing_to = np.where(b_snap | (not aggregated), b - 1, np.minimum(b_prev, b - 1))
    missing = np.where(claims, truth.count_in(a, missing_to), 0)
    check.reader_lost = int((seq[1:] - seq[:-1] - 1)[skipped].sum())
    check.reader_lost_updates = int(between[skipped].sum() + own[skipped & b_gap].sum())
    check.gap_covered = int(between[covered].sum() + own[covered & b_gap].sum())
    check.reflected = int(own[~b_gap].sum() + (between - missing)[claims].sum())
    check.records_in_gap = int((~skipped & gapped[:-1] & ~b_gap & ~b_snap).sum())
    backwards = (b < a) | ((b == a) & ~b_snap) | (~b_snap & (b_prev < a))
    check.out_of_order_seqs = seq[1:][claims & backwards]
    _undetected(check, truth, np.flatnonzero(missing), a, missing_to, seq[1:], b_snap)
    return check


def _undetected(
    check: RingCheck,
    truth: BookTruth,
    pairs: np.ndarray,
    after: np.ndarray,
    upto: np.ndarray,
    seq: np.ndarray,
    snapshot: np.ndarray,
) -> None:
    ids = [truth.ids_in(int(after[i]), int(upto[i])) for i in pairs]
    check.undetected_ids = np.concatenate(ids) if ids else check.undetected_ids
    check.undetected_at = [
        {
            "seq": int(seq[i]),
            "after_change_id": int(after[i]),
            "missing": len(ids[k]),
            "first_missing": int(ids[k][0]),
            "record": "SNAPSHOT" if snapshot[i] else "change",
        }
        for k, i in enumerate(pairs[:SAMPLES_KEPT])
    ]


def _wrong_at(wrong: np.ndarray, truth: BookTruth) -> list[dict]:
    out = []
    for r in wrong[:SAMPLES_KEPT]:
        known = bool(truth.count_in(int(r["change_id"]) - 1, int(r["change_id"])))
        out.append(
            {
                "seq": int(r["seq"]),
                "change_id": int(r["change_id"]),
                "flags": int(r["flags"]),
                "why": "top-10 differs from the truth" if known else "change_id never published",
            }
        )
    return out


def merge_checks(checks: Sequence[RingCheck]) -> dict:
    """One ring's findings over all consumers: losses and wrong books are unions (a change or record
    counts once however many consumers saw it); counts of what the feeder wrote are the largest seen."""
    undetected = np.unique(np.concatenate([c.undetected_ids for c in checks])) if checks else []
    wrong = np.unique(np.concatenate([c.wrong_seqs for c in checks])) if checks else []
    disorder = np.unique(np.concatenate([c.out_of_order_seqs for c in checks])) if checks else []
    return {
        "published_in_window": max((c.published for c in checks), default=0),
        "gap_records": max((c.gaps for c in checks), default=0),
        "snapshots": max((c.snapshots for c in checks), default=0),
        "undetected": len(undetected),
        "wrong_books": len(wrong),
        "out_of_order": len(disorder),
        "records_in_gap": max((c.records_in_gap for c in checks), default=0),
        "unverifiable": max((c.unverifiable for c in checks), default=0),
        "phantom_exposed": max((c.phantom_exposed for c in checks), default=0),
    }


def phantom_windows(t_ns: int, until_ns: int, timeline: RingTimeline | None) -> tuple[int, int] | None:
    """(t_ns, publish time of the ring's first GAP at or after t_ns): the records a phantom fault at
    t_ns may have made wrong; None when no GAP came before `until_ns` (the phantom went undetected)."""
    if timeline is None:
        return None
    t = timeline.ts_publish
    hits = np.flatnonzero(timeline.gap & (t >= t_ns) & (t < until_ns))
    return (t_ns, int(t[hits[0]])) if len(hits) else None


# --- latency --------------------------------------------------------------------------------------


def send_times(obs: np.ndarray, sends: Sends | None) -> np.ndarray:
    """Per record, when the simulator sent the frame it reflects: the last send of its change_id at or
    before the worker received it; -1 for GAP records and when unknown."""
    out = np.full(len(obs), -1, np.int64)
    if sends is None or len(sends.change_id) == 0 or len(obs) == 0:
        return out
    cid, recv = obs["change_id"], obs["ts_recv"]
    idx = np.searchsorted(sends.change_id, cid, "right") - 1
    for _ in range(4):  # step back over re-sends of the same change_id after the receive (rare)
        c = np.maximum(idx, 0)
        late = (idx >= 0) & (sends.change_id[c] == cid) & (sends.send_ns[c] > recv)
        if not late.any():
            break
        idx = np.where(late, idx - 1, idx)
    c = np.maximum(idx, 0)
    good = (idx >= 0) & (sends.change_id[c] == cid) & (sends.send_ns[c] <= recv) & ~flag_masks(obs)[0]
    out[good] = sends.send_ns[c[good]]
    return out


def percentiles_us(values_ns: np.ndarray) -> dict:
    """count, p50, p99, p99.9 and max in microseconds (None when empty)."""
    if len(values_ns) == 0:
        return {"count": 0, "p50_us": None, "p99_us": None, "p999_us": None, "max_us": None}
    p50, p99, p999 = np.percentile(values_ns, [50, 99, 99.9]) / 1e3
    return {
        "count": len(values_ns),
        "p50_us": round(float(p50), 1),
        "p99_us": round(float(p99), 1),
        "p999_us": round(float(p999), 1),
        "max_us": round(float(values_ns.max()) / 1e3, 1),
    }


def windows(t_s: np.ndarray, values_ns: np.ndarray, width_s: float) -> list[dict]:
    """Latency percentiles per window of `width_s` seconds of `t_s` (seconds since the start)."""
    if len(t_s) == 0:
        return []
    bins = np.floor(t_s / width_s).astype(np.int64)
    order = np.argsort(bins, kind="stable")
    bins, values = bins[order], values_ns[order]
    edges = np.flatnonzero(np.diff(bins)) + 1
    out = []
    for chunk_bins, chunk in zip(np.split(bins, edges), np.split(values, edges), strict=True):
        out.append({"t_s": float(chunk_bins[0] * width_s), **percentiles_us(chunk)})
    return out


# --- faults ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RingTimeline:
    """What the fault figures need of one ring, in ring order: publish times, GAP records, valid SNAPSHOTs
    and records shown as valid with a book the truth does not have."""

    ts_publish: np.ndarray
    gap: np.ndarray
    valid_snapshot: np.ndarray
    wrong: np.ndarray


def timeline(obs: np.ndarray, truth: BookTruth) -> RingTimeline:
    gap, snap = flag_masks(obs)
    matches, wrong, _ = verify_books(obs, truth)
    return RingTimeline(obs["ts_publish"], gap, snap & matches, wrong & ~gap)


def recovery(t_ns: int, until_ns: int, rings: Iterable[str], timelines: dict[str, RingTimeline]) -> dict:
    """For a fault at `t_ns`: which of `rings` got a GAP before `until_ns`, how soon, and how long until
    each had a valid SNAPSHOT again (recovery_s: the slowest ring; None when one never recovered)."""
    disrupted, detect, recover = [], [], []
    for ring in rings:
        tl = timelines.get(ring)
        if tl is None:
            continue
        t = tl.ts_publish
        hits = np.flatnonzero(tl.gap & (t >= t_ns) & (t < until_ns))
        if not len(hits):
            continue
        disrupted.append(ring)
        detect.append((t[hits[0]] - t_ns) / 1e9)
        after = np.flatnonzero(tl.valid_snapshot[hits[0] :])
        recover.append((t[hits[0] + after[0]] - t_ns) / 1e9 if len(after) else None)
    return {
        "disrupted": disrupted,
        "detect_s": round(min(detect), 4) if detect else None,
        "recovery_s": None if None in recover or not recover else round(max(recover), 4),
        "recovered": None not in recover,
    }


def blind(t_ns: int, until_ns: int, rings: Iterable[str], timelines: dict[str, RingTimeline]) -> dict:
    """How long a fault at `t_ns` left its books blind, before `until_ns` (the next fault):
    - blind_s: per ring, 0 when it got no GAP, else from the fault to its next valid record after that
      GAP (the book was flagged untrustworthy, or stale until the feeder found out, all that time);
      the worst ring; None when one never got a valid record again;
    - quiet_s: the longest a reader of any of the rings waited for a new valid record from the fault on
      (also without a GAP: a book left stale, then continued)."""
    blinds: list[float | None] = []
    quiet = 0.0
    for ring in rings:
        tl = timelines.get(ring)
        if tl is None:
            continue
        t = tl.ts_publish
        window = (t >= t_ns) & (t < until_ns)
        valid = t[window & ~tl.gap]
        waits = np.diff(np.concatenate(([t_ns], valid, [] if len(valid) else [until_ns])))
        quiet = max(quiet, float(waits.max()) / 1e9 if len(waits) else 0.0)
        hits = np.flatnonzero(tl.gap & window)
        if not len(hits):
            blinds.append(0.0)
            continue
        after = np.flatnonzero(~tl.gap[hits[0] :] & (t[hits[0] :] < until_ns))
        blinds.append((t[hits[0] + after[0]] - t_ns) / 1e9 if len(after) else None)
    return {
        "blind_s": None if None in blinds else round(max(blinds, default=0.0), 4),  # type: ignore[type-var]
        "quiet_s": round(quiet, 4),
    }


def phantom_shown(t_ns: int, until_ns: int, timeline: RingTimeline | None) -> bool:
    """Whether a phantom fault at `t_ns` reached the ring: a record shown as valid with a wrong book before
    `until_ns`. With two connections the other's good copy of the change may win, and then there is
    nothing to detect."""
    if timeline is None:
        return False
    t = timeline.ts_publish
    return bool((timeline.wrong & (t >= t_ns) & (t < until_ns)).any())


# --- resources ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    t_s: float  # since the soak started
    role: str  # sim, supervisor, worker0, consumer1, ...
    pid: int
    rss: int  # bytes
    cpu: float  # percent of one CPU since the previous sample


@dataclass(frozen=True)
class LeakRule:
    """RSS growth after warm-up beyond max(`mib`, `fraction` of the post-warm-up baseline) is a leak.

    Warm-up ends `warmup_s` after the start, or `process_warmup_s` after the process was first seen
    if that is later; growth is the median of the last `edge` samples minus that of the first `edge`
    after warm-up."""

    warmup_s: float
    mib: float = 64.0
    fraction: float = 0.25
    process_warmup_s: float = 30.0  # a process that starts later (a restarted worker) warms up too
    min_span_s: float = 30.0  # a process observed for less after warm-up is not judged
    edge: int = 5  # samples whose median is the baseline (first) and the end value (last)


def resources(samples: Iterable[Sample], rule: LeakRule) -> dict[str, dict]:
    """Per process (role and pid): RSS at the start, peak and end, growth after warm-up, CPU; leak or not."""
    by_proc: dict[tuple[str, int], list[Sample]] = {}
    for s in samples:
        by_proc.setdefault((s.role, s.pid), []).append(s)
    return {f"{role}/{pid}": _process(series, rule) for (role, pid), series in sorted(by_proc.items())}


def _process(series: list[Sample], rule: LeakRule) -> dict:
    t = np.array([s.t_s for s in series])
    rss = np.array([s.rss for s in series], float) / 2**20
    cpu = np.array([s.cpu for s in series])
    out = {
        "samples": len(series),
        "first_s": round(float(t[0]), 1),
        "last_s": round(float(t[-1]), 1),
        "rss_start_mib": round(float(rss[0]), 1),
        "rss_peak_mib": round(float(rss.max()), 1),
        "rss_end_mib": round(float(rss[-1]), 1),
        "cpu_mean_pct": round(float(cpu.mean()), 1),
        "cpu_max_pct": round(float(cpu.max()), 1),
        "judged": False,
        "leak": False,
    }
    post = t >= max(rule.warmup_s, t[0] + rule.process_warmup_s)
    if post.sum() < 2 * rule.edge or t[post][-1] - t[post][0] < rule.min_span_s:
        return out
    tp, rp = t[post], rss[post]
    baseline, end = float(np.median(rp[: rule.edge])), float(np.median(rp[-rule.edge :]))
    growth = end - baseline
    allowed = max(rule.mib, rule.fraction * baseline)
    slope = float(np.polyfit(tp, rp, 1)[0]) * 60 if tp[-1] > tp[0] else 0.0
    out.update(
        judged=True,
        baseline_mib=round(baseline, 1),
        growth_mib=round(growth, 1),
        allowed_mib=round(allowed, 1),
        slope_mib_per_min=round(slope, 2),
        leak=growth > allowed,
    )
    return out


# --- the verdict ----------------------------------------------------------------------------------


def failures(
    rings: dict[str, dict],
    processes: dict[str, dict],
    leftovers: dict,
    run_errors: list[str],
    trades: dict[str, dict] | None = None,
    phantoms: Sequence[dict] = (),
) -> list[str]:
    """Why the soak failed (empty: it passed)."""
    out = list(run_errors)
    for name, ring in sorted((trades or {}).items()):
        for key, what in (
            ("duplicates", "trades read twice"),
            ("wrong", "trades the exchange did not print so"),
            ("undetected", "trades missed without a GAP"),
        ):
            if ring[key]:
                out.append(f"{name}: {ring[key]} {what}")
    out += [
        f"{p['ring']}: the {p['kind']} fault at {p['t_s']} s was never detected (no GAP before the next fault)"
        for p in phantoms
        if not p["detected"] and p.get("shown", True)
    ]
    for name, ring in sorted(rings.items()):
        for key, what in (
            ("undetected", "undetected losses"),
            ("wrong_books", "wrong books"),
            ("out_of_order", "records out of order"),
        ):
            if ring[key]:
                out.append(f"{name}: {ring[key]} {what}")
    out += [
        f"{name}: RSS leak (+{p['growth_mib']} MiB after warm-up)"
        for name, p in processes.items()
        if p["leak"]
    ]
    out += [f"leftover process {p}" for p in leftovers.get("processes", [])]
    out += [f"leftover shared-memory segment {s}" for s in leftovers.get("segments", [])]
    return out
