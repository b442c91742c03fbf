"""`feeder example-strategy`: an example strategy quoting around the mid of one book ring.

The decisions are in feeder/consumers/quoting.py (pure); this is the shell that reads the ring, sends orders
through `FeederHandle.rpc()` and prints everything it does. It places a post-only limit bid and ask
(`private/buy` / `private/sell`, labelled `<prefix>-b<n>` / `<prefix>-s<n>`), moves them with
`private/edit` as the mid moves, cancels them while the book is flagged GAP and quotes again after the
next SNAPSHOT. On SIGINT/SIGTERM or at --duration it cancels every order of its own (checked against
the exchange's open orders) before exiting. An order request with an unknown outcome is reconciled
with `private/get_open_orders_by_instrument` by label before that side is touched again.
"""

from __future__ import annotations

import itertools
import re
import sys
import time
from typing import Any

from feeder import ExchangeError, FeederHandle, FeederNotRunning, NoHealthyWorker, RingReader, UsageError
from feeder.consumers import common
from feeder.consumers.follow import Closed, Lost, NewWriter, RingFollower
from feeder.consumers.quoting import (
    SIDES,
    Action,
    Cancel,
    Change,
    Edit,
    Order,
    Outcome,
    Place,
    QuoteParams,
    Quoter,
    Reconcile,
    Slot,
    Unknown,
    check_prefix,
    classify,
    is_ours,
    label,
    order_from,
    plan,
    reconcile,
)
from feeder.ring.schema import record_kind

PROG = "feeder example-strategy"
RETRY_S = 0.5  # after a request that was not sent or was refused
RING_MATCH = 0.05  # the ring's mid must be within 5 % of the instrument's mark price
MAX_ACTIONS = 8  # per convergence: a plan needs at most reconcile + 2 requests + extras
EXIT_DEADLINE_S = 20.0  # how long the exit keeps trying to cancel
_INSTRUMENT_RE = re.compile(r"^[A-Za-z0-9_-]{1,48}$")

EPILOG = """\
what it prints: START, QUOTE (targets and why; "SNAPSHOT ...: resuming" after a GAP), PLACE / EDIT /
CANCEL (each request and its answer), PAUSE on a GAP, UNKNOWN (an order request with an unknown outcome),
RECONCILED (what the exchange says is open), STOP and EXIT (what is left open: should be none).
Orders are post-only limit orders; the feeder paces them to Deribit's matching-engine limit.

needs a feeder with credentials (orders) and the instrument's book ring, e.g.:
  python -m feeder --sim &
  feeder example-strategy --instrument BTC-PERPETUAL --ring book.BTC --duration 60
"""


def build_parser():
    p = common.parser(PROG, "Example strategy: quote a bid and an ask around the mid via the feeder.", EPILOG)
    p.add_argument(
        "--instrument", default="BTC-PERPETUAL", help="instrument to quote (default BTC-PERPETUAL)"
    )
    p.add_argument("--ring", default="book.BTC", help="its book ring (default book.BTC)")
    p.add_argument(
        "--amount",
        type=common.positive(float),
        help="order amount (default: the instrument's minimum trade amount)",
    )
    p.add_argument(
        "--offset-ticks",
        type=common.positive(int),
        default=20,
        metavar="N",
        help="quote N ticks from the mid (default 20)",
    )
    p.add_argument(
        "--requote-ticks",
        type=common.positive(int),
        default=5,
        metavar="N",
        help="move the quotes once the mid moved N ticks (default 5)",
    )
    p.add_argument(
        "--min-interval",
        type=common.non_negative(float),
        default=0.25,
        metavar="S",
        help="move the quotes at most once per S seconds (default 0.25)",
    )
    p.add_argument(
        "--label", default="quoter", help="order label prefix, 1-40 of [A-Za-z0-9_-] (default quoter)"
    )
    p.add_argument(
        "--rpc-timeout",
        type=common.positive(float),
        default=5.0,
        metavar="S",
        help="seconds to wait for each exchange answer (default 5)",
    )
    p.add_argument(
        "--duration", type=common.positive(float), metavar="S", help="stop (and cancel) after S seconds"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    return common.run(PROG, lambda: _main(ns))


def check_plan(ns, instance: str) -> dict:
    """What `--check` prints: the validated settings."""
    return {
        "program": "example-strategy",
        "instance": instance,
        "instrument": ns.instrument,
        "ring": ns.ring,
        "amount": ns.amount,
        "offset_ticks": ns.offset_ticks,
        "requote_ticks": ns.requote_ticks,
        "min_interval_s": ns.min_interval,
        "label_prefix": ns.label,
        "rpc_timeout_s": ns.rpc_timeout,
        "duration_s": ns.duration,
        "wait_s": ns.wait,
    }


def _main(ns) -> int:
    common.check_rings([ns.ring])
    if not ns.ring.startswith("book."):
        raise UsageError(f"--ring {ns.ring!r} is not a book ring: expected book.<symbol>, e.g. book.BTC")
    if not _INSTRUMENT_RE.match(ns.instrument):
        raise UsageError(
            f"--instrument {ns.instrument!r} is not an instrument name (letters, digits, '_', '-')"
        )
    check_prefix(ns.label)
    instance = common.resolve_instance(ns.instance)
    if ns.check:
        return common.print_plan(check_plan(ns, instance))
    stop = common.Stop(ns.duration)
    deadline = time.monotonic() + ns.wait
    reader = common.attach(ns.ring, instance=instance, start="newest", wait_s=ns.wait, stop=stop)
    follower = RingFollower(reader)
    if record_kind(reader.record_type) != "book":
        raise UsageError(f"ring {ns.ring!r} holds {reader.record_type} records, not book records")
    handle = _connect(instance, deadline, stop)
    try:
        params = _params(handle, ns, deadline, stop)
        _check_ring(reader, handle, ns, deadline, stop)
        strategy = Strategy(handle, follower, ns.instrument, params, ns.label, ns.rpc_timeout)
        return strategy.run(stop)
    finally:
        handle.close()
        follower.close()


def _connect(instance: str, deadline: float, stop: common.Stop) -> FeederHandle:
    while True:
        try:
            return FeederHandle(instance)
        except FeederNotRunning:
            if stop or time.monotonic() >= deadline:
                raise
        time.sleep(0.1)


def _params(handle: FeederHandle, ns, deadline: float, stop: common.Stop) -> QuoteParams:
    """Tick size and minimum amount from the exchange (`public/get_instrument`)."""
    info = _ask(handle, "public/get_instrument", ns, deadline, stop)
    tick, lot = float(info["tick_size"]), float(info["min_trade_amount"])
    amount = lot if ns.amount is None else ns.amount
    if abs(amount / lot - round(amount / lot)) > 1e-9:
        raise UsageError(
            f"--amount {amount:g} is not a multiple of {ns.instrument}'s minimum trade amount {lot:g}"
        )
    return QuoteParams(tick, amount, ns.offset_ticks, ns.requote_ticks, ns.min_interval)


def _check_ring(reader: RingReader, handle: FeederHandle, ns, deadline: float, stop: common.Stop) -> None:
    """Refuse to quote when the ring's mid is far from the instrument's mark price: a --ring / --instrument mix-up."""
    rec = reader.latest()
    while rec is None or not (rec["bid_count"] and rec["ask_count"]):
        if stop or time.monotonic() >= deadline:
            raise UsageError(f"ring {ns.ring!r} has no two-sided book after waiting {ns.wait:g} s")
        time.sleep(0.05)
        rec = reader.latest()
    mid = (float(rec["bid_px"][0]) + float(rec["ask_px"][0])) / 2
    mark = float(_ask(handle, "public/ticker", ns, deadline, stop)["mark_price"])
    if not abs(mid / mark - 1) <= RING_MATCH:
        raise UsageError(
            f"ring {ns.ring!r} has mid {mid:g} but {ns.instrument} is marked at {mark:g}: "
            f"is --ring the book of --instrument?"
        )


def _ask(handle: FeederHandle, method: str, ns, deadline: float, stop: common.Stop) -> Any:
    """A read-only request about the instrument, retried while the workers are still connecting."""
    while True:
        try:
            return handle.rpc(method, {"instrument_name": ns.instrument}, ns.rpc_timeout)
        except NoHealthyWorker:
            if stop or time.monotonic() >= deadline:
                raise
        except ExchangeError as exc:
            raise UsageError(f"--instrument {ns.instrument!r}: {exc}") from None
        time.sleep(0.1)


class Strategy:
    """Makes our orders follow the quoter's targets; see the module doc."""

    def __init__(
        self,
        handle: FeederHandle,
        follower: RingFollower,
        instrument: str,
        params: QuoteParams,
        prefix: str,
        rpc_timeout: float,
    ):
        self.handle, self.follower, self.instrument = handle, follower, instrument
        self.params, self.prefix, self.rpc_timeout = params, prefix, rpc_timeout
        self.quoter = Quoter(params)
        # orders left by an earlier run with this prefix are adopted or cancelled by the first reconcile
        self.orders: dict[str, Slot] = {side: Unknown(None, "startup") for side in SIDES}
        self.targets = None
        self.retry_at = 0.0
        self.counts = {"placed": 0, "edited": 0, "cancelled": 0, "unknown": 0}
        self._labels = itertools.count(1)

    # --- the loop ------------------------------------------------------------------------------

    def run(self, stop: common.Stop) -> int:
        p = self.params
        common.say(
            f"START {self.instrument} on {self.follower.ring}: {p.amount:g} each side, {p.offset_ticks} ticks "
            f"(tick {p.tick:g}) from the mid, requote after {p.requote_ticks} ticks; labels {self.prefix}-*"
        )
        try:
            latest = self.follower.reader.latest()
            if latest is not None:
                self._change(self.quoter.on_record(latest))
            while not stop:
                self._step(stop)
        except FeederNotRunning:
            common.say(
                "FEEDER GONE: cannot cancel; orders of a closed connection are cancelled by the exchange "
                "when cancel-on-disconnect is on (the feeder's default)"
            )
            raise
        except Exception as exc:
            self.shutdown(f"error: {type(exc).__name__}")  # never leave quotes behind an error
            raise
        return self.shutdown(stop.reason)

    def _step(self, stop: common.Stop) -> None:
        records = self.follower.read()
        for event in self.follower.events():
            if isinstance(event, Closed):
                self._change(self.quoter.on_closed())
            elif isinstance(event, Lost):
                common.say(f"LOST {event.count} book records (lapped): acting on the newest")
            elif isinstance(event, NewWriter):
                common.say(f"NEW WRITER (epoch {event.epoch}) on {self.follower.ring}")
        for change in self.quoter.on_records(records):
            self._change(change)
        if time.monotonic() >= self.retry_at and plan(self.targets, self.orders):
            self._converge()
        if not len(records):
            self.follower.wait(stop.left(0.1))

    def _change(self, change: Change | None) -> None:
        if change is None:
            return
        t = change.targets
        if t is None:
            common.say(f"PAUSE: {change.reason}")
        else:
            why = f" ({change.reason})" if change.reason else ""
            common.say(f"QUOTE bid {t.bid:g} / ask {t.ask:g} around mid {t.mid:g}{why}")
        self.targets = t
        self.retry_at = 0.0
        self._converge()

    def _converge(self) -> None:
        """Send actions until our orders match the targets, replanning after each answer."""
        for _ in range(MAX_ACTIONS):
            actions = plan(self.targets, self.orders)
            if not actions:
                return
            if not self._do(actions[0]):
                self.retry_at = time.monotonic() + RETRY_S
                return

    # --- requests ------------------------------------------------------------------------------

    def _do(self, action: Action) -> bool:
        """Send one action; False when it failed in a way that needs a pause before retrying."""
        if isinstance(action, Reconcile):
            return self._reconcile()
        if isinstance(action, Place):
            n = next(self._labels)
            name = label(self.prefix, action.side, n)
            method, params = f"private/{action.side}", self._order_params(action.price, name)
            params.update(instrument_name=self.instrument, type="limit", post_only=True)
            what, side = (
                f"PLACE {action.side} {self.params.amount:g} @ {action.price:g} [{name}]",
                action.side,
            )
            count = "placed"
        elif isinstance(action, Edit):
            order = action.order
            name, side, count = order.label, order.side, "edited"
            method, params = "private/edit", {"order_id": order.order_id, **self._order_params(action.price)}
            params["post_only"] = True
            what = f"EDIT {side} {order.order_id} {order.price:g} -> {action.price:g} [{name}]"
        else:
            order = action.order
            name, side, count = order.label, order.side, "cancelled"
            method, params = "private/cancel", {"order_id": order.order_id}
            what = f"CANCEL {side} {order.order_id} @ {order.price:g} [{name}]"
        return self._send(method, params, what, side, name, count)

    def _order_params(self, price: float, name: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"amount": self.params.amount, "price": price}
        if name is not None:
            params["label"] = name
        return params

    def _send(self, method: str, params: dict, what: str, side: str, name: str, count: str) -> bool:
        try:
            result = self.handle.rpc(method, params, self.rpc_timeout)
        except FeederNotRunning:
            raise
        except Exception as exc:
            return self._failed(exc, what, side, name)
        obj = result.get("order", result)
        order = order_from(obj)
        self.orders[side] = order
        self.counts[count] += 1
        state = f"open id {order.order_id} @ {order.price:g}" if order else obj.get("order_state", "not open")
        common.say(f"{what}: {state}")
        return True

    def _failed(self, exc: Exception, what: str, side: str, name: str) -> bool:
        outcome = classify(exc)
        if outcome is None:
            raise exc
        if outcome is Outcome.UNKNOWN:
            self.orders[side] = Unknown(name, str(exc))
            self.counts["unknown"] += 1
            common.say(f"UNKNOWN {what}: outcome unknown ({type(exc).__name__}); reconciling by label {name}")
            return True
        if outcome is Outcome.CLOSED:
            self.orders[side] = None
            common.say(f"{what}: the order is no longer open (filled or cancelled): {exc}")
            return True
        common.say(f"{what}: {outcome.value}: {exc}; retrying in {RETRY_S:g} s")
        return False

    def _reconcile(self) -> bool:
        try:
            found = self.handle.rpc(
                "private/get_open_orders_by_instrument",
                {"instrument_name": self.instrument},
                self.rpc_timeout,
            )
        except FeederNotRunning:
            raise
        except Exception as exc:
            if classify(exc) is None:
                raise
            common.say(f"RECONCILE failed ({type(exc).__name__}: {exc}); retrying in {RETRY_S:g} s")
            return False
        kept, extras = reconcile(found, self.prefix)
        was = dict(self.orders)
        self.orders.update(kept)
        described = " | ".join(f"{side}: {_describe(kept[side])}" for side in SIDES)
        pending = [f"{side} [{s.label or 'any'}]" for side, s in was.items() if isinstance(s, Unknown)]
        common.say(f"RECONCILED ({', '.join(pending) or 'check'}): open on the exchange: {described}")
        for order in extras:
            common.say(f"RECONCILED: extra order of ours {order.order_id} [{order.label}]: cancelling")
            if not self._do(Cancel(order)):
                return False
            if self.orders[order.side] is None:  # cancelled (or closed): the kept order is still there
                self.orders[order.side] = kept[order.side]
        return True

    # --- exit ----------------------------------------------------------------------------------

    def shutdown(self, reason: str) -> int:
        """Cancel every order of ours, confirmed against the exchange's open orders."""
        common.say(f"STOP ({reason}): cancelling all orders labelled {self.prefix}-*")
        self.targets = None
        deadline = time.monotonic() + EXIT_DEADLINE_S
        while time.monotonic() < deadline:
            for side in SIDES:
                self.orders[side] = Unknown(None, "exit check")
            self._converge()  # reconcile with the exchange, then cancel what is ours
            left = self._still_open()
            if left == []:
                c = self.counts
                common.say(
                    f"EXIT: none of our orders left open; placed {c['placed']}, edited {c['edited']}, "
                    f"cancelled {c['cancelled']}, unknown outcomes {c['unknown']}"
                )
                return common.EXIT_OK
            time.sleep(RETRY_S)
        common.say(f"EXIT: could not confirm that our orders are cancelled; check labels {self.prefix}-*")
        return common.EXIT_FAILED

    def _still_open(self) -> list[str] | None:
        """Labels of our open orders per the exchange; None when it cannot be asked right now."""
        try:
            found = self.handle.rpc(
                "private/get_open_orders_by_instrument",
                {"instrument_name": self.instrument},
                self.rpc_timeout,
            )
        except FeederNotRunning:
            raise
        except Exception as exc:
            if classify(exc) is None:
                raise
            return None
        return [o.get("label", "") for o in found if is_ours(o, self.prefix)]


def _describe(order: Order | None) -> str:
    return "none" if order is None else f"{order.order_id} @ {order.price:g} [{order.label}]"


if __name__ == "__main__":
    sys.exit(main())
