"""Rings mirrored over a real nats-server between two feeder instances on one machine: what a replica
holds is the source's records byte for byte, and every seq it lacks is a GAP/MARKER record or counted
lost, whatever broke in between (the mirror killed, the server restarted, the replica dropped as a slow
consumer); with JetStream, short losses are filled instead."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import numpy as np
import pytest
from bridge.bridgekit import account, replica_figures, role_figures, wait_caught_up, write_seq
from helpers import wait_until

from feeder import RingReader, record_schema
from feeder.bridge.natsconn import NatsConfig, connect
from feeder.bridge.wire import RingIdentity, Subjects, encode_headers

RINGS = ("book.BTC", "trades.BTC")
# small enough that a paused replica is dropped as a slow consumer within a second or two
SLOW_CONSUMER = 'max_payload: 262144\nmax_pending: 524288\nwrite_deadline: "500ms"'


def settle(host, writer) -> None:
    """Freeze the source and wait until the replica holds its newest records."""
    writer.signal(signal.SIGSTOP)
    for ring in RINGS:
        wait_caught_up(host, ring)


def advance(host, records: int) -> None:
    start = write_seq(host.source, "book.BTC")
    wait_until(lambda: write_seq(host.source, "book.BTC") >= start + records, what=f"{records} more records")


def counted(host, ring: str, acc) -> dict:
    """The replica's status, once it is written past the last seq, counts exactly the seqs it holds no
    source record for."""
    wait_until(lambda: replica_figures(host.replica, ring).get("position", 0) >= acc.end, what="the status")
    figures = replica_figures(host.replica, ring)
    assert figures["lost"] == acc.gaps + acc.missing, (acc, figures, host.logs())
    return figures


def test_replica_rings_hold_the_source_records_byte_for_byte(host):
    writer = host.writer(rate=2000)
    host.mirror()
    host.replicate()
    wait_caught_up(host)
    advance(host, 1000)
    settle(host, writer)
    for ring in RINGS:
        acc = account(host.source, host.replica, ring)
        assert acc.gaps == 0 and acc.missing == 0 and acc.held > 1000, acc
    held = account(host.source, host.replica, "book.BTC").held
    try:
        wait_until(
            lambda: role_figures("mirror", host.source, "book.BTC").get("records", 0) >= held, what="mirror"
        )
        wait_until(
            lambda: replica_figures(host.replica, "book.BTC").get("records", 0) >= held, what="replica"
        )
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}: {held} held; mirror {role_figures('mirror', host.source, 'book.BTC')}, replica "
            f"{replica_figures(host.replica, 'book.BTC')}\n{host.logs()}"
        ) from None
    mirror = role_figures("mirror", host.source, "book.BTC")
    assert mirror["records"] >= 1000 and mirror["batches"] <= mirror["records"] and mirror["lost"] == 0
    figures = replica_figures(host.replica, "book.BTC")
    assert figures["lost"] == 0 and figures["lag_us_max"] is not None


def test_a_killed_mirror_leaves_a_gap_record_and_lost_seqs_never_silence(host):
    writer = host.writer(rate=2000)
    mirror = host.mirror()
    host.replicate()
    wait_caught_up(host)
    mirror.kill()
    advance(host, 500)
    host.mirror()
    wait_caught_up(host)
    advance(host, 200)
    settle(host, writer)
    for ring in RINGS:
        acc = account(host.source, host.replica, ring)
        assert acc.gaps >= 1 and acc.missing >= 400, acc
        figures = counted(host, ring, acc)
        assert figures["lost_in_transit"] == figures["lost"]


def test_a_restarted_mirror_resumes_from_jetstream_without_a_gap(host):
    writer = host.writer(rate=2000)
    mirror = host.mirror("--jetstream")
    host.replicate("--jetstream")
    wait_caught_up(host)
    mirror.kill()
    advance(host, 500)
    host.mirror("--jetstream")
    advance(host, 200)
    settle(host, writer)
    for ring in RINGS:
        acc = account(host.source, host.replica, ring)
        assert acc.gaps == 0 and acc.missing == 0, acc


def test_a_late_replica_fetches_the_history_from_jetstream(host):
    writer = host.writer(rate=2000)
    host.mirror("--jetstream")
    wait_until(
        lambda: role_figures("mirror", host.source, "book.BTC").get("records", 0) > 500, what="records"
    )
    host.replicate("--jetstream")
    advance(host, 100)
    settle(host, writer)
    acc = account(host.source, host.replica, "book.BTC")
    wait_until(lambda: replica_figures(host.replica, "book.BTC").get("repaired", 0) >= 500, what="status")
    figures = replica_figures(host.replica, "book.BTC")
    assert acc.gaps == 0 and acc.missing == 0 and figures["repaired"] >= 500, (acc, figures)


def test_a_nats_server_restart_is_accounted_for(host, nats_server):
    writer = host.writer(rate=1000)
    host.mirror("--jetstream")
    host.replicate("--jetstream")
    wait_caught_up(host)
    nats_server.restart()
    advance(host, 500)
    settle(host, writer)
    for ring in RINGS:
        counted(host, ring, account(host.source, host.replica, ring))


@pytest.mark.parametrize("nats_server", [SLOW_CONSUMER], indirect=True)
def test_a_replica_dropped_as_a_slow_consumer_is_repaired_from_jetstream(host, nats_server):
    # 5 MB/s: the paused replica's socket buffers fill in a second or two
    writer = host.writer(rate=10000, batch=10, capacity=1 << 17)
    host.mirror("--jetstream")
    replica = host.replicate("--jetstream")
    wait_caught_up(host)
    replica.signal(signal.SIGSTOP)
    wait_until(lambda: nats_server.varz()["slow_consumers"] >= 1, what="NATS dropping the paused replica")
    replica.signal(signal.SIGCONT)
    advance(host, 500)
    settle(host, writer)
    for ring in RINGS:
        acc = account(host.source, host.replica, ring)
        figures = counted(host, ring, acc)
        assert figures["repaired"] > 0 or acc.gaps > 0, figures


def test_bad_batches_are_counted_and_never_reach_a_ring(host, nats_server):
    host.replicate()
    book = record_schema("book")
    subjects = Subjects(host.source)
    record = np.zeros(1, book.dtype).tobytes()

    async def send() -> None:
        nc = await connect(NatsConfig.from_env(nats_server.url))
        foreign = RingIdentity("book", 1024, book.fingerprint ^ 1, 1).header()
        await nc.publish(subjects.ring("book.ETH"), record, headers=encode_headers(foreign, 1, 0, 1))
        await nc.publish(subjects.ring("book.BTC"), record, headers={"Feeder-Seq": "0 1"})
        await nc.publish(subjects.ring("book.BTC"), record[:100], headers=encode_headers(
            RingIdentity("book", 1024, book.fingerprint, 1).header(), 1, 0, 1))  # fmt: skip
        await nc.flush()
        await nc.close()

    def arrived() -> bool:
        btc, eth = replica_figures(host.replica, "book.BTC"), replica_figures(host.replica, "book.ETH")
        return btc.get("bad_batches", 0) >= 2 and eth.get("state") == "refused"

    # sent again until the replica has subscribed and written its status (once a second)
    wait_until(lambda: asyncio.run(send()) or arrived(), what="the bad batches counted")
    assert "fingerprint" in replica_figures(host.replica, "book.ETH")["problem"]
    assert not list(Path("/dev/shm").glob(f"feeder.{host.replica}.*"))


def test_a_recreated_source_ring_replaces_the_local_one(host):
    writer = host.writer(rate=2000)
    host.mirror()
    host.replicate()
    wait_caught_up(host)
    with RingReader("book.BTC", instance=host.replica) as before:
        writer.stop()  # the source rings are removed, as at a feeder's restart
        writer = host.writer(rate=2000)  # new rings: seqs from 0 again
        wait_until(lambda: before.ring_closed, what="the old local ring closed, as upstream")
    advance(host, 200)
    settle(host, writer)
    acc = account(host.source, host.replica, "book.BTC")
    assert acc.first == 0 and acc.gaps == 0 and acc.missing == 0, acc
