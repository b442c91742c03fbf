"""Recording storages side by side: npy chunks vs hourly Parquet, writing and loading book records.

    python scripts/bench_recording.py [--records 200000] [--repeat 3] [--quick] [--json]

Writes the same book records (random-walk prices, 10 levels a side, as the feeder publishes them)
through `RecordingWriter` in slices of 65536, then loads them back as numpy records, as an Arrow table
and as a pandas DataFrame. Reports the median of the rounds: records/s written, bytes on disk per
record, load time per format, and the ratios Parquet / npy. Files go to a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from feeder import record_schema
from feeder.recordings import RecordingWriter, read

BOOK = record_schema("book").dtype
META = {"ring": "book.BENCH", "instance": "bench", "record_type": "book", "fingerprint": "0x0", "capacity": 1}


def book_records(n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.zeros(n, BOOK)
    out["seq"] = np.arange(n)
    out["ts_recv"] = time.time_ns() + np.arange(n) * 200_000
    out["ts_exchange"] = out["ts_recv"] // 1_000_000 * 1_000_000 - 1_000_000
    out["ts_publish"] = out["ts_recv"] + 25_000
    out["change_id"] = 1_000_000 + np.cumsum(rng.integers(1, 5, n))
    out["prev_change_id"] = np.concatenate(([0], out["change_id"][:-1]))
    mid = 50_000 + np.cumsum(rng.choice([-0.5, 0, 0.5], n))
    levels = np.arange(10) * 0.5
    out["bid_px"], out["ask_px"] = mid[:, None] - 0.25 - levels, mid[:, None] + 0.25 + levels
    out["bid_sz"], out["ask_sz"] = rng.integers(1, 500, (n, 10)) * 10.0, rng.integers(1, 500, (n, 10)) * 10.0
    out["bid_count"] = out["ask_count"] = 10
    return out


def one_round(records: np.ndarray, storage: str, root: Path) -> dict[str, float]:
    path = root / storage
    started = time.perf_counter()
    w = RecordingWriter(path, META, BOOK, 65536, 3600.0, storage)
    w.event("start", seq=0, created_ns=1, epoch=1)
    for i in range(0, len(records), 1000):  # as the recorder gets them: a read's worth at a time
        w.add(records[i : i + 1000])
    w.close()
    write_s = time.perf_counter() - started
    size = sum(p.stat().st_size for p in path.iterdir() if p.suffix in (".npy", ".parquet"))
    started = time.perf_counter()
    rec = read(path)
    loaded = rec.records
    load_s = time.perf_counter() - started
    assert loaded.tobytes() == records.tobytes()
    started = time.perf_counter()
    frame = read(path).frame()
    frame_s = time.perf_counter() - started
    assert len(frame) == len(records)
    return {
        "write_records_per_s": len(records) / write_s,
        "bytes_per_record": size / len(records),
        "load_numpy_s": load_s,
        "load_pandas_s": frame_s,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=200_000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="20,000 records, one round (the suite runs this)")
    p.add_argument("--json", action="store_true")
    ns = p.parse_args()
    n, repeat = (20_000, 1) if ns.quick else (ns.records, ns.repeat)
    records = book_records(n)
    results: dict[str, dict[str, float]] = {}
    for storage in ("npy", "parquet"):
        rounds = []
        for _ in range(repeat):
            with tempfile.TemporaryDirectory() as tmp:
                rounds.append(one_round(records, storage, Path(tmp)))
        results[storage] = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    ratios = {k: results["parquet"][k] / results["npy"][k] for k in results["npy"]}
    if ns.json:
        print(json.dumps({"records": n, "rounds": repeat, "median": results, "parquet_over_npy": ratios}))
        return
    print(f"{n:,} book records, median of {repeat} round(s)")
    print(f"{'':22} {'npy':>12} {'parquet':>12} {'parquet/npy':>12}")
    for key in results["npy"]:
        print(f"{key:22} {results['npy'][key]:12.4g} {results['parquet'][key]:12.4g} {ratios[key]:12.3g}")


if __name__ == "__main__":
    main()
