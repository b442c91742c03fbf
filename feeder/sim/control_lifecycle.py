"""Control commands for the exchange's clock and its listings (see lifecycle.py and control.py).

- clock(speed=None): the exchange time and the next expiry; `speed` sets how fast it runs from now.
- advance(seconds=None, to=None): jump the clock ahead (`to="expiry"`: to the next expiry), then
  do at once what fell due (settlements, listings, terminations).
- list(instrument): list new instruments by name: created, then started.
- expire(expiry=None, instrument=None): settle an expiry (date code `4DEC26`) or one instrument now.
- delist(instrument): close an instrument now: closed, then terminated after the grace period.

Each answers {"now_ms", "listed", "settled", "closed", "terminated"} (the non-empty lists).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from feeder.errors import SimControlError
from feeder.sim.clock import wall_ms
from feeder.sim.instruments import REF_PRICE, expiry_ms, parse_expiry_code, parse_name
from feeder.sim.lifecycle import Events

if TYPE_CHECKING:
    from feeder.sim.market import InstrumentState
    from feeder.sim.server import SimApp


def instrument_index(app: SimApp, name: object) -> int:
    """Any instrument ever listed (terminated ones too: their truth stays)."""
    idx = app.catalogue.by_name.get(name) if isinstance(name, str) else None
    if idx is None:
        raise SimControlError(f"unknown instrument {name!r}; see the 'instruments' command")
    return idx


def clock(app: SimApp, speed: float | None = None) -> dict[str, Any]:
    """The exchange time and the next expiry; `speed` (> 0) sets how fast the clock runs from now."""
    if speed is not None:
        if not isinstance(speed, int | float) or isinstance(speed, bool) or not 0 < speed <= 1e7:
            raise SimControlError(f"clock: speed must be a number > 0 and at most 1e7, got {speed!r}")
        app.clock.set_speed(float(speed), wall_ms())
    return {
        "now_ms": app.hub.now_ms(),
        "speed": app.clock.speed,
        "next_expiry_ms": app.lifecycle.next_expiry(),
    }


def advance(app: SimApp, seconds: float | None = None, to: str | None = None) -> dict[str, Any]:
    """Jump the exchange clock ahead (`seconds`, or `to="expiry"`), and do what falls due at once."""
    now = app.hub.now_ms()
    if to is not None:
        target = app.lifecycle.next_expiry() if to == "expiry" else None
        if to != "expiry" or seconds is not None:
            raise SimControlError('advance: give seconds=S or to="expiry", not both')
        if target is None:
            raise SimControlError("advance: no dated instrument left to expire")
        step = max(0, target - now)
    elif (
        isinstance(seconds, int | float)
        and not isinstance(seconds, bool)
        and 0 <= seconds <= 10 * 365 * 86400
    ):
        step = round(seconds * 1000)
    else:
        raise SimControlError(f"advance: seconds must be a number from 0 to ten years, got {seconds!r}")
    app.clock.advance(step, wall_ms())
    events = _step(app)
    return {"now_ms": app.hub.now_ms(), **events.to_json()}


def _step(app: SimApp, events: Events | None = None) -> Events:
    now = app.hub.now_ms()
    app.hub.clock = time.monotonic()
    events = (events or Events()).add(app.lifecycle.tick(now, app.hub.clock))
    app.market.reprice(now)
    app.hub.index_tick(now)
    app.hub.flush()
    return events


def list_(app: SimApp, instrument: str | list[str]) -> dict[str, Any]:
    """List new instruments by name (a future expiry, never listed before): created, then started."""
    names = instrument if isinstance(instrument, list) else [instrument]
    now = app.hub.now_ms()
    found = []
    for name in names:
        if not isinstance(name, str) or name in app.catalogue.by_name:
            raise SimControlError(f"list: {name!r} is already listed (or was: names are never reused)")
        inst = parse_name(name, now, app.market.index_price(name[:3]) if name[:3] in REF_PRICE else 0.0)
        if inst is None:
            raise SimControlError(f"list: {name!r} is not a Deribit name with an expiry after now")
        found.append(inst)
    app.hub.clock = time.monotonic()
    events = Events(listed=[app.lifecycle.list(inst, now).inst.name for inst in found])
    return {"now_ms": now, **_step(app, events).to_json()}


def expire(app: SimApp, expiry: str | None = None, instrument: str | None = None) -> dict[str, Any]:
    """Settle now, at the index of now: every instrument of an expiry (`4DEC26`) or one instrument."""
    if (expiry is None) == (instrument is None):
        raise SimControlError("expire: give expiry=<date code such as 4DEC26> or instrument=<name>")
    if instrument is not None:
        targets = [app.market.states[instrument_index(app, instrument)]]
    else:
        day = parse_expiry_code(expiry) if isinstance(expiry, str) else None
        if day is None:
            raise SimControlError(f"expire: {expiry!r} is not a date code such as 4DEC26")
        at = expiry_ms(day)
        targets = [st for st in app.market.states if st.inst.expiry_ms == at and st.trading]
    return _end(app, "expire", targets, "settled")


def delist(app: SimApp, instrument: str) -> dict[str, Any]:
    """Close an instrument now (no settlement): closed, then terminated after the grace period."""
    return _end(app, "delist", [app.market.states[instrument_index(app, instrument)]], "closed")


def _end(app: SimApp, cmd: str, targets: list[InstrumentState], status: str) -> dict[str, Any]:
    if not targets or any(not st.trading or st.inst.is_perpetual for st in targets):
        raise SimControlError(
            f"{cmd}: nothing that trades and expires matches (see the 'instruments' command)"
        )
    now = app.hub.now_ms()
    app.hub.clock = time.monotonic()
    ended = [app.lifecycle.end(st, status, now, app.hub.clock) for st in targets]
    events = Events(**{status: ended})
    return {"now_ms": now, **_step(app, events).to_json()}


LIFECYCLE_COMMANDS: dict[str, Callable[..., Any]] = {
    "clock": clock,
    "advance": advance,
    "list": list_,
    "expire": expire,
    "delist": delist,
}
