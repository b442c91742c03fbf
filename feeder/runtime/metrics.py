"""`--metrics-port`: the status figures in Prometheus' text exposition format over HTTP.

The format is a few lines of text, so this needs no client library: `exposition(status)` is pure and
a tiny asyncio HTTP server answers `GET /metrics`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

_WORKER_GAUGES = {
    "feeder_worker_up": (
        "1 if the worker runs and its connection is up",
        lambda w: w["state"] == "running" and w["connected"],
    ),
    "feeder_worker_health_score": ("health score 0-100", lambda w: w["score"]),
    "feeder_worker_messages_per_second": ("frames received per second", lambda w: w["msgs_per_s"]),
    "feeder_worker_latency_p50_ms": ("request round trip p50", lambda w: w["latency_p50_ms"]),
    "feeder_worker_latency_p99_ms": ("request round trip p99", lambda w: w["latency_p99_ms"]),
    "feeder_worker_restarts_total": ("times the worker was replaced", lambda w: w["restarts"]),
    "feeder_worker_reconnects_total": ("reconnects of its connection", lambda w: w["reconnects"]),
    "feeder_worker_gaps_total": ("book gaps detected", lambda w: w["gaps"]),
}
_RING_GAUGES = {
    "feeder_ring_write_seq": ("records published to the ring", lambda r: r["write_seq"]),
    "feeder_ring_epoch": ("writer takeovers", lambda r: r["epoch"]),
    "feeder_ring_last_publish_age_seconds": (
        "seconds since the last publish",
        lambda r: r["last_publish_age_s"],
    ),
    "feeder_ring_gaps_total": ("gaps flagged in the ring", lambda r: r.get("gaps", 0)),
}


def _value(v: object) -> str | None:
    if v is None:
        return None
    return str(float(v))


def exposition(status: dict) -> str:
    """Prometheus text format for a status dict."""
    instance = status["instance"]
    out: list[str] = []
    for name, (help_text, get) in _WORKER_GAUGES.items():
        out += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
        for w in status["workers"]:
            v = _value(get(w))
            if v is not None:
                out.append(f'{name}{{instance="{instance}",worker="{w["index"]}"}} {v}')
    for name, (help_text, get) in _RING_GAUGES.items():
        out += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
        for r in status["rings"]:
            v = _value(get(r))
            if v is not None:
                out.append(f'{name}{{instance="{instance}",ring="{r["name"]}"}} {v}')
    return "\n".join(out) + "\n"


class MetricsServer:
    def __init__(self, get_status: Callable[[], dict]):
        self._get_status = get_status
        self._server: asyncio.base_events.Server | None = None
        self.port: int | None = None

    async def start(self, port: int, host: str = "127.0.0.1") -> None:
        self._server = await asyncio.start_server(self._serve, host, port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
            path = request.split(b" ", 2)[1] if request.count(b" ") >= 2 else b""
            if path == b"/metrics":
                body, head = exposition(self._get_status()).encode(), b"200 OK"
            else:
                body, head = b"not found: try /metrics\n", b"404 Not Found"
            writer.write(
                b"HTTP/1.1 " + head + b"\r\nContent-Type: text/plain; version=0.0.4\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
