"""What schemas/ tells an independent reader is what the code does."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from feeder import CROSSED, FINAL, GAP, LOCKED, MARKER, SNAPSHOT
from feeder.exchanges.deribit.adapter import DeribitAdapter
from feeder.exchanges.deribit.channels import STREAM_RECORDS, ChannelMap

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
RING = json.loads((SCHEMAS / "ring.json").read_text())


def test_each_streams_record_type_is_the_one_documented():
    assert RING["stream_record_types"] == dict(STREAM_RECORDS)


def test_the_c_flag_defines_are_the_flags_in_use():
    readme = (SCHEMAS / "README.md").read_text()
    defines = {name: int(value) for name, value in re.findall(r"#define FEEDER_(\w+)\s+(\d+)u", readme)}
    assert (
        defines
        == RING["record_flags"]
        == {
            "SNAPSHOT": SNAPSHOT,
            "GAP": GAP,
            "CROSSED": CROSSED,
            "MARKER": MARKER,
            "FINAL": FINAL,
            "LOCKED": LOCKED,
        }
    )


def test_book_levels_beyond_the_counts_are_zero_not_nan():
    adapter = DeribitAdapter(ChannelMap(authenticated=True).routes(["book.BTC"]).values())
    data = {
        "type": "snapshot",
        "timestamp": 1,
        "instrument_name": "BTC-PERPETUAL",
        "change_id": 5,
        "bids": [["new", 100.0, 1.0], ["new", 99.0, 2.0]],
        "asks": [["new", 101.0, 1.0]],
    }
    msg = {"method": "subscription", "params": {"channel": "book.BTC-PERPETUAL.raw", "data": data}}
    [(_, records)] = adapter.feed(msg, 1)
    rec = records[0]
    assert (rec["bid_count"], rec["ask_count"]) == (2, 1)
    for field, count in (("bid_px", 2), ("bid_sz", 2), ("ask_px", 1), ("ask_sz", 1)):
        assert np.all(rec[field][count:] == 0.0), field
    assert "0.0" in json.dumps(json.loads((SCHEMAS / "book.json").read_text())["fields"][8])
