"""What the supervisor shows: one entry per worker and per ring, for `status()`.

The dicts it builds are read by `feeder status`, the live display (`runtime.display`), the Prometheus
exposition (`runtime.metrics`) and FeederHandle users: their keys are an interface and stay put. Ring
figures come from the ring headers themselves (`list_rings`), so they show what readers see. Channel
figures (`feeder.core.silence`) come from the workers' reports: per channel its messages and seconds of
silence; per ring the silence of its freshest and of its quietest channel.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import psutil

from feeder.core.meter import RateMeter
from feeder.core.routing import worker_score
from feeder.core.silence import ring_silence
from feeder.ring import list_rings
from feeder.runtime.supervisor.slots import Slot

RING_RATE_EVERY_S = 0.5  # a ring's records per second are measured over at least this long


class StatusBoard:
    """Builds the workers' and rings' entries; keeps the rings' rate meters between calls."""

    def __init__(self, instance: str):
        self.instance = instance
        self._ring_rates: dict[str, RateMeter] = {}

    def workers(self, slots: list[Slot]) -> list[dict[str, Any]]:
        now = time.monotonic()
        return [_worker(s, worker_score(s.view(now), now)) for s in slots]

    def channels(self, slots: list[Slot]) -> dict[str, dict[str, Any]]:
        """Per exchange channel: its ring, worker, messages and seconds since the last (per leg too)."""
        now_ns = time.time_ns()
        out: dict[str, dict[str, Any]] = {}
        for s in slots:
            for channel, figures in s.channels.figures(now_ns).items():
                figures["worker"] = s.index
                out[channel] = figures
        return out

    def rings(self, slots: list[Slot], channels: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        now, now_ns = time.monotonic(), time.time_ns()
        silence = ring_silence(channels)
        gaps = {ring: n for s in slots for ring, n in s.health.get("ring_gaps", {}).items()}
        audits = {ring: figures for s in slots for ring, figures in s.audits().items()}
        out = []
        for info in list_rings(self.instance):
            d = info.to_dict()
            meter = self._ring_rates.get(info.name)
            if meter is None:  # first look: the average since the ring was created
                since_created = info.write_seq / max(1e-3, (now_ns - info.created_ns) / 1e9)
                meter = self._ring_rates[info.name] = RateMeter(RING_RATE_EVERY_S, since_created)
            d["rate"] = meter.sample(now, info.write_seq)
            d["gaps"] = gaps.get(info.name, 0)
            d["silence_s"], d["silence_max_s"] = silence.get(info.name, (None, None))
            if info.name in audits:
                d["audits"] = _audits(audits[info.name], now_ns)
            out.append(d)
        return out


def _worker(s: Slot, score: int) -> dict[str, Any]:
    h = s.health
    cpu_percent = None
    if s.ps is not None:
        with contextlib.suppress(psutil.Error):
            cpu_percent = s.ps.cpu_percent(None)
    return {
        "index": s.index,
        "pid": s.pid,
        "cpu": s.cpu,
        "cpu_percent": cpu_percent,
        "state": s.state.value,
        "connected": bool(h.get("connected")),
        "authenticated": bool(h.get("authenticated")),
        "rings": list(s.rings),
        "msgs_per_s": round(s.frames.rate, 1),
        "latency_p50_ms": h.get("latency_p50_ms"),
        "latency_p99_ms": h.get("latency_p99_ms"),
        "score": score,
        "restarts": s.restarts,
        "served": s.served,
        "gaps": h.get("gaps", 0),
        "reconnects": h.get("reconnects", 0),
        "rtt_ms": h.get("rtt_ms"),  # the connection's last ping (or heartbeat answer) round trip
        "rate_limit_events": h.get("rate_limit_events", 0),  # slow-down answers (10028 and the like)
        "refused_connects": h.get("refused_connects", 0),  # connects refused (HTTP 429, TCP refused)
        "last_error": s.last_error,
        "legs": list(h.get("legs", ())),  # redundancy 2: each connection, which one leads and by how much
    }


def _audits(figures: dict[str, int], now_ns: int) -> dict[str, int | float | None]:
    last = figures.get("last_passed_ns", 0)
    return {
        "passed": figures.get("passed", 0),
        "failed": figures.get("failed", 0),
        "unverifiable": figures.get("unverifiable", 0),
        "last_passed_age_s": round((now_ns - last) / 1e9, 1) if last else None,
        "crossed": figures.get("crossed", 0),
    }
