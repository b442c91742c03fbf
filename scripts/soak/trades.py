"""The soak's trade verdicts: every trade read once, none wrong, every missing one flagged. Pure.

One consumer's view of a trades ring, in read order, against the exchange's trades (the truth log's
`T` lines): MARKER records carry no trade; a trade_seq read twice is a *duplicate*, one the exchange
never printed or with another amount is *wrong*; the exchange's trades missing between two read ones
are *gap_covered* (the trade after them is GAP, or a MARKER|GAP record came between), *reader_lost*
(the reader skipped ring records) or *undetected*. So the sum of `amount` over non-MARKER records
equals the exchange's volume of the trades read, and the volume of the whole window minus what was
flagged missing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from feeder import GAP, MARKER
from soak.truth import TradeTruth


@dataclass
class TradeCheck:
    """One consumer's view of one trades ring, checked against the exchange's trades."""

    records: int = 0
    markers: int = 0
    trades: int = 0
    duplicates: int = 0
    wrong: int = 0  # a trade_seq the exchange never printed, or another amount
    gap_covered: int = 0
    reader_lost: int = 0
    undetected: int = 0
    volume_read: float = 0.0  # sum of amount over non-MARKER records
    volume_of_read: float = 0.0  # the exchange's amounts of the trades read (equal when nothing is wrong)
    volume_in_window: float = 0.0  # the exchange's volume from the first to the last trade read
    volume_missed_flagged: float = 0.0  # of it, what was missing and flagged (GAP/MARKER or reader lost)

    def as_dict(self) -> dict:
        return dict(vars(self))


def check_trades(obs: np.ndarray, truth: TradeTruth) -> TradeCheck:
    """Account for every trade of the exchange between the first and the last one read (see the doc)."""
    marker = (obs["flags"] & MARKER) != 0
    real_at = np.flatnonzero(~marker)
    real = obs[real_at]
    check = TradeCheck(records=len(obs), markers=int(marker.sum()), trades=len(real))
    if not len(real):
        return check
    seqs = real["trade_seq"]
    before = np.maximum.accumulate(np.concatenate([[np.iinfo(np.int64).min], seqs[:-1]]))
    duplicate = seqs <= before
    known, amounts = truth.amounts(seqs)
    check.duplicates = int(duplicate.sum())
    check.wrong = int((~known | (amounts != real["amount"]))[~duplicate].sum())
    check.volume_read = float(real["amount"].sum())
    check.volume_of_read = float(amounts.sum())
    fresh, fresh_at = seqs[~duplicate], real_at[~duplicate]
    ids = truth.trade_seq
    in_window = (ids >= fresh[0]) & (ids <= fresh[-1])
    check.volume_in_window = float(truth.amount[in_window].sum())
    if len(fresh) < 2:
        return check
    a, b = fresh[:-1], fresh[1:]
    missing = np.searchsorted(ids, b, "left") - np.searchsorted(ids, a, "right")
    missed_volume = np.array([truth.amount[(ids > x) & (ids < y)].sum() for x, y in zip(a, b, strict=True)])
    markers_before = np.concatenate([[0], np.cumsum(marker)])
    skipped = np.concatenate([[False], obs["seq"][1:] != obs["seq"][:-1] + 1])
    skips_before = np.concatenate([[0], np.cumsum(skipped)])
    i, j = fresh_at[:-1], fresh_at[1:]
    flagged = (markers_before[j] > markers_before[i + 1]) | ((obs["flags"][j] & GAP) != 0)
    lost = ~flagged & (skips_before[j + 1] > skips_before[i + 1])
    check.gap_covered = int(missing[flagged].sum())
    check.reader_lost = int(missing[lost].sum())
    check.undetected = int(missing[~flagged & ~lost].sum())
    check.volume_missed_flagged = float(missed_volume[flagged | lost].sum())
    return check
