"""Liveness: a link that goes silent (TCP up, nothing sent, pings unanswered; or pongs still coming from
a WebSocket layer whose exchange behind it hung) is found by active liveness, long before two Deribit
heartbeat intervals, and every book of that connection is flagged GAP; a link whose data merely pauses
is kept. Against the simulator, over real sockets."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from client.clientkit import Events, call, only_conn, run, until
from deribit.simfeed import Tape, flag_violations, truth_mismatches

from feeder.client import Client, ClientConfig, Hooks
from feeder.exchanges.deribit.session import SessionConfig
from feeder.ring import GAP, SNAPSHOT
from feeder.runtime.feed import Feed, FeedConfig
from feeder.sim import SimServer

BTC, ETH = "BTC-PERPETUAL", "ETH-PERPETUAL"


def _client_config(sim: SimServer) -> ClientConfig:
    # A 10 s Deribit heartbeat: its own rule (no message for 20 s) cannot be what finds the stall.
    return ClientConfig(
        url=sim.ws_url, heartbeat="deribit", heartbeat_interval=10.0, initial_delay=0.05, max_backoff=0.5
    )


def _fresh_after_gap(flags: list[int]) -> bool:
    """A SNAPSHOT came after the last GAP: the book is live again."""
    gaps = [i for i, f in enumerate(flags) if f & GAP]
    return bool(gaps) and any(f & SNAPSHOT for f in flags[gaps[-1] + 1 :])


def _one_other_connection(sim: SimServer, stalled: int) -> bool:
    """The stalled connection is gone and its replacement is the only one (one look at the server)."""
    conns = sim.connections()
    return len(conns) == 1 and conns[0]["id"] != stalled


@pytest.mark.parametrize("pongs", [False, True])
def test_a_stall_flags_every_book_of_the_connection_gap_and_the_link_is_replaced(pongs):
    with SimServer(instruments=[BTC, ETH], rate=50 if pongs else 0, seed=7) as sim:

        async def main():
            events = Events()
            config = FeedConfig(
                client=_client_config(sim), rings=("book.BTC", "book.ETH"), session=SessionConfig()
            )
            async with Feed(config, on_event=events):
                tapes = [Tape("book.BTC"), Tape("book.ETH")]
                await call(sim.publish, 3)
                await until(lambda: all(SNAPSHOT in t.flags() for t in tapes), "both books live")
                stalled = await call(only_conn, sim)
                if pongs:  # a steady link: only then is its quiet worth a public/test
                    frames = sim.connections()[0]["frames_sent"]
                    await until(lambda: sim.connections()[0]["frames_sent"] > frames + 150, "3 s of data")
                await call(sim.fault, "stall", conn=stalled, pongs=pongs)
                await until(lambda: all(t.flags()[-1] & GAP for t in tapes), "a GAP on every book")
                dead = (await events.wait("heartbeat_dead"))[0].data
                await until(lambda: _one_other_connection(sim, stalled), "a new connection")
                while not all(_fresh_after_gap(t.flags()) for t in tapes):
                    await call(sim.publish, 1)
                    await asyncio.sleep(0.05)
                records = [t.records for t in tapes]
                for tape in tapes:
                    tape.close()
                return dead, events.named("disconnected")[0].data, records

        dead, disconnected, records = run(main())
        wrong = {
            name: truth_mismatches(sim, name, recs) for name, recs in zip((BTC, ETH), records, strict=True)
        }
    unanswered = "public/test unanswered" if pongs else "pings unanswered"
    assert unanswered in dead["reason"] and dead["verdict"] == "dead"
    assert "heartbeat" in disconnected["reason"] and disconnected["category"] == "recoverable"
    assert wrong == {BTC: [], ETH: []}, "every record, GAP ones included, is the exchange's book"
    assert [flag_violations(recs) for recs in records] == [[], []]


def test_a_pause_of_a_steady_link_costs_one_answered_public_test_and_no_reconnect():
    with SimServer(instruments=[BTC], rate=0, seed=7) as sim:

        async def main():
            events = Events()
            config = dataclasses.replace(_client_config(sim), liveness_interval=0.3, liveness_timeout=1.0)
            client = Client(config, on_event=events, hooks=Hooks(subscribe_method="public/subscribe"))
            await client.connect()
            await client.subscribe([f"book.{BTC}.100ms"])
            try:
                steady_until = asyncio.get_running_loop().time() + 2.0
                while asyncio.get_running_loop().time() < steady_until:  # messages 20 times a second
                    await call(sim.publish, 1)
                    await asyncio.sleep(0.05)
                await until(lambda: client.heartbeat_health()["pongs"] >= 6, "answered pings in the pause")
                return client.heartbeat_health(), client.metrics()["connects"], events.named("heartbeat_dead")
            finally:
                await client.close()

        health, connects, dead = run(main())
    assert connects == 1 and dead == [] and health["misses_total"] == 0
    assert health["probe_requests_sent"] >= 1 and health["probes_sent"] >= 6
