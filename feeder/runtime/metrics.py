"""`--metrics-port`: the feeder's figures in Prometheus' text exposition format, over HTTP.

Rules kept here:
- Prometheus' conventions: every name starts with `feeder_`, carries its base unit (`_seconds`,
  `_bytes`, `_ratio`), counters end in `_total`, and every family has HELP and TYPE lines. The suite
  parses the whole exposition with prometheus-client's parser and checks every family.
- Labels: `feeder_instance` (not `instance`: Prometheus sets that to the scraped target), `worker` (its
  index), `ring`, `channel` (an exchange channel: `book.BTC-PERPETUAL.raw`), `stage`, and `leg` (a, b) on
  the families of redundant connections (`redundancy = 2`: one sample per worker and leg, or per channel
  and leg; none with one connection).
- Families are data: adding one is one line in FAMILIES (a name, a type, a scope, a help text and how
  to get the value from `status()`; a value of None is left out).
- Per-stage latency histograms come from the ring records' own timestamps, read by a RingSampler in the
  supervisor's process, so the workers' hot path pays nothing: exchange->receive (ts_exchange to ts_recv,
  coarse: Deribit stamps whole milliseconds) and receive->publish (ts_recv to ts_publish: decode, book,
  publish). Records flagged GAP or MARKER are left out (they may repeat an older record's stamps), and so
  are records without an exchange stamp from the first stage; a negative difference (clock offset)
  counts as 0. The sampler reads each ring 4 times a second; records it is lapped on are not observed.
- Request round trips are the workers' own p50/p99 (a summary without _sum and _count: workers send
  percentiles, not observations).
- `exposition()` is pure; a tiny asyncio HTTP server answers `GET /metrics`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from feeder.errors import FeederError, RingError
from feeder.ring import GAP, MARKER, RingReader, list_rings

log = logging.getLogger(__name__)
GAUGE, COUNTER, SUMMARY, HISTOGRAM = "gauge", "counter", "summary", "histogram"
FEEDER, WORKER, RING, LEG = "feeder", "worker", "ring", "leg"
CHANNEL, CHANNEL_LEG = "channel", "channel_leg"
SAMPLE_EVERY_S = 0.25
RESCAN_EVERY = 8  # samples between looks for new or replaced rings
STAGES = ("exchange_to_receive", "receive_to_publish")
BUCKETS = (
    1e-5,
    2.5e-5,
    5e-5,
    1e-4,
    2.5e-4,
    5e-4,
    1e-3,
    2.5e-3,
    5e-3,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


@dataclass(frozen=True)
class Family:
    name: str
    kind: str  # gauge | counter | summary
    scope: str  # feeder | worker | leg | ring | channel | channel_leg: what one sample describes
    help: str
    value: Callable[[dict[str, Any]], Any]  # from status() (or one of its workers or rings) to a number


def _audit(key: str) -> Callable[[dict[str, Any]], Any]:
    """A ring's live-audit figure; None (no sample) for rings that are not audited."""
    return lambda r: (r.get("audits") or {}).get(key)


def _us(value: int | None) -> float | None:
    return None if value is None else value / 1e6


def _ms(key: str) -> Callable[[dict[str, Any]], float | None]:
    return lambda w: None if w.get(key) is None else w[key] / 1000.0


FAMILIES = (
    Family("feeder_uptime_seconds", GAUGE, FEEDER, "seconds since the supervisor started", lambda s: s["uptime_s"]),
    Family("feeder_worker_up", GAUGE, WORKER, "1 if the worker runs and its connection is up", lambda w: w["state"] == "running" and w["connected"]),
    Family("feeder_worker_health_score", GAUGE, WORKER, "health score, 0 (cannot serve) to 100", lambda w: w["score"]),
    Family("feeder_worker_cpu_usage_ratio", GAUGE, WORKER, "CPU used by the worker process (1 = one core)", lambda w: None if w.get("cpu_percent") is None else w["cpu_percent"] / 100),
    Family("feeder_worker_messages_per_second", GAUGE, WORKER, "frames received from the exchange per second", lambda w: w["msgs_per_s"]),
    Family("feeder_worker_request_round_trip_seconds", SUMMARY, WORKER, "exchange request round trips (p50, p99 of the worker's recent requests)", lambda w: {"0.5": _ms("latency_p50_ms")(w), "0.99": _ms("latency_p99_ms")(w)}),
    Family("feeder_worker_requests_served_total", COUNTER, WORKER, "requests routed to the worker", lambda w: w.get("served")),
    Family("feeder_worker_restarts_total", COUNTER, WORKER, "times the worker process was replaced", lambda w: w["restarts"]),
    Family("feeder_worker_reconnects_total", COUNTER, WORKER, "reconnects of the worker's exchange connection", lambda w: w["reconnects"]),
    Family("feeder_worker_gaps_total", COUNTER, WORKER, "book gaps the worker detected", lambda w: w["gaps"]),
    Family("feeder_worker_ping_round_trip_seconds", GAUGE, WORKER, "round trip of the connection's last liveness ping or heartbeat answer", _ms("rtt_ms")),
    Family("feeder_worker_rate_limit_events_total", COUNTER, WORKER, "slow-down answers from the exchange (10028 too_many_requests and overload codes)", lambda w: w.get("rate_limit_events")),
    Family("feeder_worker_refused_connects_total", COUNTER, WORKER, "connection attempts the exchange refused (HTTP 429 or TCP refused)", lambda w: w.get("refused_connects")),
    Family("feeder_leg_up", GAUGE, LEG, "1 if this redundant connection of the worker is up", lambda g: g["connected"]),
    Family("feeder_leg_health_score", GAUGE, LEG, "the connection's own health score, 0 to 100", lambda g: g["score"]),
    Family("feeder_leg_books_joined", GAUGE, LEG, "books this connection feeds now (the others: it resyncs)", lambda g: g["books_joined"]),
    Family("feeder_leg_wins_total", COUNTER, LEG, "changes, trades and tickers published from this connection's copy (it came first)", lambda g: g["wins"]),
    Family("feeder_leg_losses_total", COUNTER, LEG, "copies dropped because the other connection's came first", lambda g: g["losses"]),
    Family("feeder_leg_filled_total", COUNTER, LEG, "copies held after a hole on this connection, then published when the other filled it", lambda g: g["filled"]),
    Family("feeder_leg_win_share_ratio", GAUGE, LEG, "share of the last second's winning copies that came from this connection", lambda g: g.get("win_share")),
    Family("feeder_leg_behind_seconds", SUMMARY, LEG, "how far behind the winner this connection's dropped copies came (last second, p50 and p99, power-of-two µs buckets)", lambda g: {"0.5": _us(g.get("behind_p50_us")), "0.99": _us(g.get("behind_p99_us"))}),
    Family("feeder_leg_reconnects_total", COUNTER, LEG, "reconnects of this connection", lambda g: g["reconnects"]),
    Family("feeder_ring_records_published_total", COUNTER, RING, "records published to the ring", lambda r: r["write_seq"]),
    Family("feeder_ring_writer_epoch", GAUGE, RING, "writer epoch: +1 each time a writer takes the ring over", lambda r: r["epoch"]),
    Family("feeder_ring_last_publish_age_seconds", GAUGE, RING, "seconds since the ring's last publish", lambda r: r["last_publish_age_s"]),
    Family("feeder_ring_gaps_total", COUNTER, RING, "GAP records the ring's writer published", lambda r: r.get("gaps", 0)),
    Family("feeder_ring_size_bytes", GAUGE, RING, "shared memory the ring takes", lambda r: r.get("size_bytes")),
    Family("feeder_ring_audits_passed_total", COUNTER, RING, "live audits whose exchange snapshot equalled the published book", _audit("passed")),
    Family("feeder_ring_audits_failed_total", COUNTER, RING, "live audits that found the published book wrong (GAP and resync followed)", _audit("failed")),
    Family("feeder_ring_audits_unverifiable_total", COUNTER, RING, "live audits whose snapshot could not be matched to a published change_id", _audit("unverifiable")),
    Family("feeder_ring_last_passed_audit_age_seconds", GAUGE, RING, "seconds since the book last passed a live audit", _audit("last_passed_age_s")),
    Family("feeder_ring_crossed_total", COUNTER, RING, "crossed or locked books seen (each one resynced unless crossed = flag)", _audit("crossed")),
    Family("feeder_channel_silence_seconds", GAUGE, CHANNEL, "seconds since the exchange channel last carried a message (with redundancy: its freshest connection); a quiet market is not a gap", lambda c: c["silence_s"]),
    Family("feeder_channel_messages_total", COUNTER, CHANNEL, "messages the exchange channel carried (with redundancy: each change once)", lambda c: c["messages"]),
    Family("feeder_leg_channel_silence_seconds", GAUGE, CHANNEL_LEG, "seconds since this redundant connection last brought a message of the channel", lambda c: c["silence_s"]),
    Family("feeder_leg_channel_messages_total", COUNTER, CHANNEL_LEG, "messages of the channel this redundant connection brought (its copies, won or not)", lambda c: c["messages"]),
)  # fmt: skip
STAGE_FAMILY = "feeder_record_latency_seconds"
STAGE_HELP = (
    "latency of ring records per stage (exchange_to_receive, receive_to_publish), from their timestamps"
)


# --- histograms (pure) ---------------------------------------------------------------------------


class Histogram:
    """Cumulative Prometheus histogram of seconds, fed with numpy arrays."""

    def __init__(self, bounds: tuple[float, ...] = BUCKETS):
        self.bounds = np.asarray(bounds)
        self.counts = np.zeros(len(bounds) + 1, np.int64)  # the last one: above every bound
        self.sum = 0.0

    def observe(self, seconds: np.ndarray) -> None:
        values = np.maximum(seconds, 0.0)
        self.counts += np.bincount(
            np.searchsorted(self.bounds, values, side="left"), minlength=len(self.counts)
        )
        self.sum += float(values.sum())

    @property
    def count(self) -> int:
        return int(self.counts.sum())

    def buckets(self) -> list[tuple[float, int]]:
        """(upper bound, cumulative count) pairs, the last one +Inf."""
        cumulative = np.cumsum(self.counts)
        return [
            *zip(self.bounds.tolist(), cumulative[:-1].tolist(), strict=True),
            (math.inf, int(cumulative[-1])),
        ]


class RecordStages:
    """The stage histograms of one ring, from its records' timestamps."""

    def __init__(self) -> None:
        self.stages = {stage: Histogram() for stage in STAGES}

    def add(self, records: np.ndarray) -> None:
        kept = records[(records["flags"] & (GAP | MARKER)) == 0]
        recv = kept["ts_recv"]
        self.stages["receive_to_publish"].observe((kept["ts_publish"] - recv) / 1e9)
        stamped = kept["ts_exchange"] > 0
        self.stages["exchange_to_receive"].observe((recv[stamped] - kept["ts_exchange"][stamped]) / 1e9)


# --- exposition (pure) ---------------------------------------------------------------------------


def _escape(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(labels: dict[str, object]) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def _number(value: object) -> str:
    v = float(value)  # type: ignore[arg-type]
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(v)


def _writers(status: dict[str, Any]) -> dict[str, int]:
    return {ring: w["index"] for w in status["workers"] for ring in w.get("rings", ())}


def _subjects(family: Family, status: dict[str, Any]) -> Iterable[tuple[dict[str, object], dict[str, Any]]]:
    """(labels, the dict the value comes from) for each sample of a family."""
    instance = {"feeder_instance": status["instance"]}
    if family.scope == FEEDER:
        yield instance, status
    elif family.scope == WORKER:
        for w in status["workers"]:
            yield {**instance, "worker": w["index"]}, w
    elif family.scope == LEG:
        for w in status["workers"]:
            for leg in w.get("legs", ()):
                yield {**instance, "worker": w["index"], "leg": leg["name"]}, leg
    elif family.scope in (CHANNEL, CHANNEL_LEG):
        for channel, c in status.get("channels", {}).items():
            labels = {**instance, "channel": channel, "ring": c["ring"], "worker": c["worker"]}
            if family.scope == CHANNEL:
                yield labels, c
            else:
                for leg in c.get("legs", ()):
                    yield {**labels, "leg": leg["name"]}, leg
    else:
        writers = _writers(status)
        for r in status["rings"]:
            yield {**instance, "ring": r["name"], "worker": writers.get(r["name"], "")}, r


def _samples(family: Family, labels: dict[str, object], value: Any) -> list[str]:
    if family.kind == SUMMARY:
        return [
            f"{family.name}{_labels({**labels, 'quantile': q})} {_number(v)}"
            for q, v in value.items()
            if v is not None
        ]
    return [] if value is None else [f"{family.name}{_labels(labels)} {_number(value)}"]


def exposition(status: dict[str, Any], stages: dict[str, RecordStages] | None = None) -> str:
    """Prometheus text format for a status dict (and the rings' stage histograms)."""
    out: list[str] = []
    for family in FAMILIES:
        out += [f"# HELP {family.name} {family.help}", f"# TYPE {family.name} {family.kind}"]
        for labels, subject in _subjects(family, status):
            out += _samples(family, labels, family.value(subject))
    out += [f"# HELP {STAGE_FAMILY} {STAGE_HELP}", f"# TYPE {STAGE_FAMILY} {HISTOGRAM}"]
    writers = _writers(status)
    for ring, ring_stages in sorted((stages or {}).items()):
        for stage, hist in ring_stages.stages.items():
            labels = {
                "feeder_instance": status["instance"],
                "ring": ring,
                "worker": writers.get(ring, ""),
                "stage": stage,
            }
            for bound, count in hist.buckets():
                le = "+Inf" if math.isinf(bound) else repr(bound)
                out.append(f"{STAGE_FAMILY}_bucket{_labels({**labels, 'le': le})} {_number(count)}")
            out.append(f"{STAGE_FAMILY}_sum{_labels(labels)} {_number(hist.sum)}")
            out.append(f"{STAGE_FAMILY}_count{_labels(labels)} {_number(hist.count)}")
    return "\n".join(out) + "\n"


# --- I/O -----------------------------------------------------------------------------------------


class RingSampler:
    """Reads every ring of an instance (read-only) and feeds its stage histograms."""

    def __init__(self, instance: str):
        self.instance = instance
        self.readers: dict[str, RingReader] = {}
        self.stages: dict[str, RecordStages] = {}
        self._samples = 0

    def sample(self) -> None:
        if self._samples % RESCAN_EVERY == 0:
            self._rescan()
        self._samples += 1
        for name, reader in list(self.readers.items()):
            self.stages.setdefault(name, RecordStages()).add(reader.read())
            if reader.ring_closed:
                reader.close()
                del self.readers[name]

    def _rescan(self) -> None:
        for info in list_rings(self.instance):
            if info.name not in self.readers and not info.closed:
                with contextlib.suppress(RingError):
                    self.readers[info.name] = RingReader(info.name, instance=self.instance, wait="spin_sleep")

    def close(self) -> None:
        readers, self.readers = self.readers, {}
        for reader in readers.values():
            reader.close()


class MetricsServer:
    def __init__(self, get_status: Callable[[], dict[str, Any]]):
        self._get_status = get_status
        self._server: asyncio.base_events.Server | None = None
        self._sampler: RingSampler | None = None
        self._task: asyncio.Task[None] | None = None
        self.port: int | None = None

    async def start(self, port: int, host: str = "127.0.0.1") -> None:
        self._sampler = RingSampler(self._get_status()["instance"])
        self._task = asyncio.get_running_loop().create_task(self._sample_loop(self._sampler))
        self._server = await asyncio.start_server(self._serve, host, port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _sample_loop(self, sampler: RingSampler) -> None:
        while True:
            try:
                sampler.sample()
            except (FeederError, OSError) as exc:  # a ring replaced under the sampler: it looks again
                log.warning("metrics: reading the rings for the latency histograms failed: %s", exc)
                sampler.close()
            await asyncio.sleep(SAMPLE_EVERY_S)

    def text(self) -> str:
        return exposition(self._get_status(), None if self._sampler is None else self._sampler.stages)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
            path = request.split(b" ", 2)[1] if request.count(b" ") >= 2 else b""
            if path == b"/metrics":
                body, head = self.text().encode(), b"200 OK"
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
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._sampler is not None:
            self._sampler.close()
        if self._server is not None:
            self._server.close()
