"""Login, refresh, cancel-on-disconnect and orders through the feed's session, against the simulator."""

from __future__ import annotations

import asyncio

import pytest
from deribit.simfeed import BTC, Tape, control, feed_config, simulator, truth_mismatches, until

from feeder.errors import ConnectFailed, ExchangeError, NotAuthenticated, OutcomeUnknown, UsageError
from feeder.exchanges.deribit import Credentials
from feeder.ring import SNAPSHOT
from feeder.runtime.feed import Feed
from feeder.sim import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 150))


async def _sent(sim, match, since: int = 1):
    return await control(sim, "wait_sent", match, timeout=20.0, since=since)


@pytest.mark.parametrize("grant", ["client_credentials", "client_signature"])
def test_login_before_raw_subscriptions(grant):
    async def main(sim):
        async with Feed(feed_config(sim, ("book.BTC",), grant=grant)) as feed:
            assert feed.session.authenticated
            assert feed.client.subscriptions == ["book.BTC-PERPETUAL.raw"]
            auth = await _sent(sim, {"method": "public/auth", "params": {"grant_type": grant}})
            subscribe = await _sent(sim, {"method": "public/subscribe"})
            assert auth.seq < subscribe.seq
            if grant == "client_signature":
                assert "client_secret" not in auth.message["params"]
                assert DEMO_CLIENT_SECRET not in auth.text

    with simulator() as sim:
        run(main(sim))


def test_the_token_is_refreshed_before_it_expires():
    async def main(sim):
        async with Feed(feed_config(sim, ("book.BTC",))) as feed:
            await until(lambda: feed.session.refreshes >= 2, what="two token refreshes")
            await _sent(sim, {"method": "public/auth", "params": {"grant_type": "refresh_token"}})
            assert await feed.session.get_open_orders_by_instrument(BTC) == []
            assert feed.session.refresh_failures == 0 and feed.session.logins == 1

    with simulator(token_ttl=1.5) as sim:
        run(main(sim))


def test_bad_credentials_stop_the_feed_with_a_clear_error():
    async def main(sim):
        feed = Feed(feed_config(sim, ("book.BTC",), credentials=Credentials(DEMO_CLIENT_ID, "wrong")))
        with pytest.raises(ConnectFailed) as caught:
            await feed.start()
        assert caught.value.fatal
        assert "credentials" in str(caught.value)
        assert "wrong" not in str(caught.value)

    with simulator() as sim:
        run(main(sim))


def test_without_credentials_public_data_flows_and_private_methods_fail_clearly():
    async def main(sim):
        async with Feed(feed_config(sim, ("book.BTC",), credentials=None)) as feed:
            assert feed.client.subscriptions == ["book.BTC-PERPETUAL.100ms"]
            tape = Tape("book.BTC")
            await until(
                lambda: tape.flags() == [SNAPSHOT], what="the snapshot (sent at the next 100 ms tick)"
            )
            last = (await control(sim, "publish", 20, BTC))["last"][BTC]
            await until(lambda: tape.reached(last), what="the aggregated change")
            assert truth_mismatches(sim, BTC, tape.records) == []
            tape.close()
            with pytest.raises(NotAuthenticated, match="DERIBIT_CLIENT_ID"):
                await feed.session.buy(instrument_name=BTC, amount=10, type="market")
            assert not feed.session.authenticated
            assert not [m for m in sim.received() if "cancel_on_disconnect" in m.text]

    with simulator() as sim:
        run(main(sim))


def test_cancel_on_disconnect_is_enabled_and_verified_after_every_connect():
    async def main(sim):
        async with Feed(feed_config(sim, ("book.BTC",), cancel_on_disconnect="account")) as feed:
            assert feed.session.cod_enabled
            first = await _sent(
                sim, {"method": "private/get_cancel_on_disconnect", "params": {"scope": "account"}}
            )
            await control(sim, "disconnect", how="reset")
            await until(lambda: feed.client.metrics()["connects"] == 2 and feed.session.cod_enabled)
            again = await _sent(sim, {"method": "private/get_cancel_on_disconnect"}, since=first.seq + 1)
            enable = await _sent(sim, {"method": "private/enable_cancel_on_disconnect"}, since=first.seq + 1)
            assert enable.seq < again.seq and again.conn != first.conn

    with simulator() as sim:
        run(main(sim))


async def _best(feed) -> tuple[float, float]:
    book = await feed.session.rpc("public/get_order_book", {"instrument_name": BTC})
    return book["best_bid_price"], book["best_ask_price"]


def test_orders_are_placed_edited_filled_and_cancelled_over_the_feeds_connection():
    async def main(sim):
        async with Feed(feed_config(sim, ("book.BTC",))) as feed:
            session = feed.session
            bid, _ = await _best(feed)
            placed = await session.buy(
                instrument_name=BTC, amount=10, type="limit", price=bid - 500, label="t-rest"
            )
            order = placed["order"]
            assert (order["order_state"], order["label"], order["direction"]) == ("open", "t-rest", "buy")
            open_ids = [o["order_id"] for o in await session.get_open_orders_by_instrument(BTC)]
            assert open_ids == [order["order_id"]]
            edited = await session.edit(order_id=order["order_id"], amount=20, price=bid - 600)
            assert (edited["order"]["price"], edited["order"]["amount"]) == (bid - 600, 20)
            bid, _ = await _best(feed)
            filled = await session.sell(
                instrument_name=BTC, amount=10, type="limit", price=bid, label="t-take"
            )
            assert filled["order"]["order_state"] == "filled" and filled["trades"]
            assert filled["order"]["filled_amount"] == 10
            cancelled = await session.cancel(order["order_id"])
            assert cancelled["order_state"] == "cancelled"
            assert await session.get_open_orders_by_instrument(BTC) == []
            await session.buy(instrument_name=BTC, amount=10, type="limit", price=bid - 700)
            assert await session.cancel_all() == 1

    with simulator() as sim:
        run(main(sim))


def test_exchange_errors_surface_with_code_message_and_data():
    async def main(sim):
        async with Feed(feed_config(sim, ("book.BTC",))) as feed:
            with pytest.raises(ExchangeError) as caught:
                await feed.session.cancel("no-such-order")
            error = caught.value
            assert (error.code, error.message) == (10004, "order_not_found")
            assert error.data["param"] == "order_id"
            with pytest.raises(ExchangeError) as caught:
                await feed.session.buy(instrument_name=BTC, amount="ten", type="limit", price=1.0)
            assert caught.value.code == -32602 and caught.value.data["param"] == "amount"

    with simulator() as sim:
        run(main(sim))


def test_cancel_on_disconnect_cancels_resting_orders_when_the_connection_drops():
    async def main(sim):
        async with Feed(feed_config(sim, ("book.BTC",))) as feed:
            bid, _ = await _best(feed)
            placed = await feed.session.buy(instrument_name=BTC, amount=10, type="limit", price=bid - 500)
            assert sim.stats()["open_orders"] == 1
            await control(sim, "disconnect", how="reset")
            await until(lambda: feed.client.metrics()["connects"] == 2 and feed.session.authenticated)
            assert await feed.session.get_open_orders_by_instrument(BTC) == []
            state = await feed.session.rpc(
                "private/get_order_state", {"order_id": placed["order"]["order_id"]}
            )
            assert (state["order_state"], state["cancel_reason"]) == ("cancelled", "cancel_on_disconnect")

    with simulator() as sim:
        run(main(sim))


def test_an_order_whose_answer_is_lost_raises_outcome_unknown_with_its_label():
    async def main(sim):
        async with Feed(feed_config(sim, ("book.BTC",))) as feed:
            bid, _ = await _best(feed)
            await control(sim, "fault", "stall")
            with pytest.raises(OutcomeUnknown) as caught:
                await feed.session.rpc(
                    "private/buy",
                    {
                        "instrument_name": BTC,
                        "amount": 10,
                        "type": "limit",
                        "price": bid - 500,
                        "label": "lost-1",
                    },
                    timeout=1.0,
                )
            assert caught.value.label == "lost-1" and caught.value.method == "private/buy"

    with simulator() as sim:
        run(main(sim))


def test_an_unlabelled_order_whose_answer_is_lost_names_the_label_it_was_sent_with():
    async def main(sim):
        async with Feed(feed_config(sim, ("book.BTC",))) as feed:
            bid, _ = await _best(feed)
            placed = await feed.session.buy(instrument_name=BTC, amount=10, type="limit", price=bid - 500)
            assert placed["order"]["label"].startswith("fh-")
            await control(sim, "fault", "stall")
            with pytest.raises(OutcomeUnknown) as caught:
                await feed.session.rpc(
                    "private/buy",
                    {"instrument_name": BTC, "amount": 10, "type": "limit", "price": bid - 500},
                    1.0,
                )
            sent = [
                m.message for m in sim.received() if m.message and m.message.get("method") == "private/buy"
            ]
            assert caught.value.label.startswith("fh-")
            assert [m["params"]["label"] for m in sent] == [placed["order"]["label"], caught.value.label]

    with simulator() as sim:
        run(main(sim))


def test_a_label_over_64_characters_is_refused_before_sending():
    async def main(sim):
        async with Feed(feed_config(sim, ("book.BTC",))) as feed:
            with pytest.raises(UsageError, match="at most 64"):
                await feed.session.buy(instrument_name=BTC, amount=10, type="market", label="x" * 65)
            assert not [m for m in sim.received() if m.message and m.message.get("method") == "private/buy"]

    with simulator() as sim:
        run(main(sim))
