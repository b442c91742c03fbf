"""Deribit's official specs, kept in tests/reference/deribit/ (see the README there)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

SPEC_DIR = Path(__file__).resolve().parent / "reference" / "deribit"


@cache
def load_spec(name: str) -> dict:
    """`openapi.json` or `asyncapi.json`, parsed once."""
    return json.loads((SPEC_DIR / name).read_text())
