"""Session recording format: one JSON object per line, credentials redacted; replay and metadata.

A line is `{"ts": ns, "dir": "in"|"out"|"meta", "type": ..., "data": ...}`:
- frames: dir in/out, type "text" (data = the frame text) or "binary" (data = base64);
- meta: type "header" first (format version, redacted URL, start time) and "trailer" last (frames
  written, frames dropped because the writer fell behind: a recording says what it is missing).
Redaction: every value under a secret-looking key (client_secret, signature, access_token,
refresh_token, password, api_key, ...) at any depth becomes "<redacted>"; text that is not JSON has the
same keys masked by pattern. Frames without any such key are stored byte-for-byte as received.
"""

from __future__ import annotations

import base64
import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit, urlunsplit

import orjson

FORMAT_VERSION = 1
REDACTED = "<redacted>"
SECRET_KEYS = frozenset(
    {
        "client_secret",
        "signature",
        "access_token",
        "refresh_token",
        "password",
        "passphrase",
        "secret",
        "api_key",
        "apikey",
        "api_secret",
        "token",
        "authorization",
        "x-mbx-apikey",
    }
)
# The shortest secret keys that no other contains: a frame holding none of them needs no parsing.
_NEEDLES = tuple(k for k in SECRET_KEYS if not any(o != k and o in k for o in SECRET_KEYS))
_PATTERN = re.compile(
    r'("(?:' + "|".join(re.escape(k) for k in SECRET_KEYS) + r')"\s*:\s*)("(?:[^"\\]|\\.)*"|[^,}\]\s]+)',
    re.IGNORECASE,
)


class Entry(NamedTuple):
    ts: int
    dir: str
    type: str
    data: Any


def redact_value(obj: Any) -> Any:
    """A copy of a decoded JSON value with every secret-keyed value replaced."""
    if isinstance(obj, dict):
        return {k: REDACTED if k.lower() in SECRET_KEYS else redact_value(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [redact_value(v) for v in obj]
    return obj


def redact_text(text: str) -> str:
    """The frame text with secrets redacted; the same string when it holds none."""
    lowered = text.lower()
    if not any(needle in lowered for needle in _NEEDLES):
        return text
    try:
        decoded = orjson.loads(text)
    except orjson.JSONDecodeError:
        return _PATTERN.sub(lambda m: m.group(1) + f'"{REDACTED}"', text)
    return orjson.dumps(redact_value(decoded)).decode()


def redact_url(url: str) -> str:
    """The URL without user info and with every query value hidden."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    query = "&".join(
        f"{p.split('=', 1)[0]}={REDACTED}" if "=" in p else p for p in parts.query.split("&") if p
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def format_entry(ts: int, direction: str, kind: str, data: Any) -> bytes:
    """One recording line (with its newline), secrets redacted."""
    if kind == "text":
        data = redact_text(data)
    elif kind == "binary":
        data = base64.b64encode(data).decode()
    else:
        data = redact_value(data)
    return orjson.dumps({"ts": ts, "dir": direction, "type": kind, "data": data}) + b"\n"


def header(url: str, started_ns: int) -> bytes:
    return format_entry(started_ns, "meta", "header", {"format": FORMAT_VERSION, "url": redact_url(url)})


def trailer(ts: int, written: int, dropped: int) -> bytes:
    return format_entry(ts, "meta", "trailer", {"frames": written, "dropped": dropped})


def read_entries(path: str | Path) -> Iterator[Entry]:
    """Every entry of a recording, meta included; a torn last line (crash mid-write) is skipped."""
    with open(path, "rb") as f:
        for line in f:
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            data = obj["data"]
            if obj["type"] == "binary":
                data = base64.b64decode(data)
            yield Entry(obj["ts"], obj["dir"], obj["type"], data)


def replay(path: str | Path, speed: float | None = None) -> Iterator[Entry]:
    """The recorded frames in order: as fast as possible (speed None) or at recorded timing ÷ speed."""
    first_ts: int | None = None
    start_wall = 0.0
    for entry in read_entries(path):
        if entry.dir == "meta":
            continue
        if speed is not None:
            if first_ts is None:
                first_ts, start_wall = entry.ts, time.monotonic()
            delay = (entry.ts - first_ts) / 1e9 / speed - (time.monotonic() - start_wall)
            if delay > 0:
                time.sleep(delay)
        yield entry


def metadata(path: str | Path) -> dict[str, Any]:
    """Counts by direction and type, bytes, first/last frame time, duration, header and trailer."""
    counts: Counter[str] = Counter()
    size: Counter[str] = Counter()
    meta: dict[str, Any] = {}
    first = last = None
    for e in read_entries(path):
        if e.dir == "meta":
            meta[e.type] = e.data
            continue
        counts[f"{e.dir}.{e.type}"] += 1
        size[e.dir] += len(e.data)
        first = e.ts if first is None else first
        last = e.ts
    return {
        "frames": sum(counts.values()),
        "frames_in": sum(v for k, v in counts.items() if k.startswith("in.")),
        "frames_out": sum(v for k, v in counts.items() if k.startswith("out.")),
        "by_type": dict(counts),
        "bytes_in": size["in"],
        "bytes_out": size["out"],
        "first_ts": first,
        "last_ts": last,
        "duration_s": (last - first) / 1e9 if first is not None and last is not None else 0.0,
        "header": meta.get("header"),
        "dropped": (meta.get("trailer") or {}).get("dropped"),
    }
