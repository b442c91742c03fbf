"""Per-channel silence: how long since each exchange channel carried a message. Pure: figures and times in.

A channel that usually carries many messages a second and goes quiet while its connection still answers
pings is suspicious, not proof (markets pause): the feeder records it and shows it, for a user to alert on,
and never flags a book on silence alone.

- `ChannelReport` (the worker's side): from the feed's figures (`Feed.channel_figures`), what to send up the
  pipe now: only the channels whose counts changed since the last report, the new ones and the names of
  those no longer served; the first report of a process names every channel (`full`). Thousands of quiet
  option channels cost nothing once reported.
- `ChannelTable` (the supervisor's side): merges reports, keeps counts over the processes a worker slot ran
  (a replacement starts from zero: its counts add to the earlier ones, the last receive time stays the
  latest) and gives each channel's silence at `now_ns`: since its last message, or, for a channel that has
  carried none, since it was first reported. A channel's time is as fresh as the last report (the worker
  sends one a second), so a silence reads high by at most that, never low.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# (channel, ring, messages, last receive ns or 0, per leg (messages, last receive ns) or None)
Figures = tuple[str, str, int, int, tuple[tuple[int, int], ...] | None]
# a report's entry per channel: (ring, messages, last receive ns, per leg or None)
Entry = tuple[str, int, int, tuple[tuple[int, int], ...] | None]


class ChannelReport:
    """What a worker sends of its channels' figures (see the module doc)."""

    def __init__(self) -> None:
        self._sent: dict[str, tuple[int, tuple[tuple[int, int], ...] | None]] = {}
        self._full = True

    def changes(self, figures: Iterable[Figures]) -> dict[str, Any] | None:
        """`{"full", "changed": {channel: Entry}, "gone": [channel]}`, or None when nothing changed."""
        sent, full = self._sent, self._full
        changed: dict[str, Entry] = {}
        served: set[str] = set()
        for channel, ring, messages, last_ns, legs in figures:
            served.add(channel)
            key = (messages, legs)
            if full or sent.get(channel) != key:
                sent[channel] = key
                changed[channel] = (ring, messages, last_ns, legs)
        gone = [channel for channel in sent if channel not in served]
        for channel in gone:
            del sent[channel]
        if not (full or changed or gone):
            return None
        self._full = False
        return {"full": full, "changed": changed, "gone": gone}


class _Counts:
    __slots__ = ("before", "last_ns", "messages")

    def __init__(self) -> None:
        self.messages = 0  # of the current process
        self.before = 0  # of the slot's earlier processes
        self.last_ns = 0

    def update(self, messages: int, last_ns: int) -> None:
        self.messages = messages
        if last_ns > self.last_ns:
            self.last_ns = last_ns

    def retire(self) -> None:
        self.before, self.messages = self.before + self.messages, 0


class _Channel:
    __slots__ = ("counts", "legs", "ring", "since_ns")

    def __init__(self, ring: str, since_ns: int):
        self.ring = ring
        self.since_ns = since_ns  # when it was first reported: a channel without a message is silent since
        self.counts = _Counts()
        self.legs: list[_Counts] = []


class ChannelTable:
    """What the supervisor knows of one worker slot's channels (see the module doc)."""

    def __init__(self) -> None:
        self.channels: dict[str, _Channel] = {}

    def merge(self, report: dict[str, Any], now_ns: int) -> None:
        """A worker's report (`ChannelReport.changes`); a full one replaces the set of channels."""
        changed: dict[str, Entry] = report["changed"]
        if report["full"]:
            for channel in [c for c in self.channels if c not in changed]:
                del self.channels[channel]
        for channel in report["gone"]:
            self.channels.pop(channel, None)
        for channel, (ring, messages, last_ns, legs) in changed.items():
            entry = self.channels.get(channel)
            if entry is None:
                entry = self.channels[channel] = _Channel(ring, now_ns)
            entry.ring = ring
            entry.counts.update(messages, last_ns)
            for leg, (leg_messages, leg_last_ns) in enumerate(legs or ()):
                if leg == len(entry.legs):
                    entry.legs.append(_Counts())
                entry.legs[leg].update(leg_messages, leg_last_ns)

    def new_process(self) -> None:
        """A replacement process starts counting from zero: what the last one counted is kept."""
        for entry in self.channels.values():
            entry.counts.retire()
            for leg in entry.legs:
                leg.retire()

    def figures(self, now_ns: int, leg_names: tuple[str, ...] = ("a", "b")) -> dict[str, dict[str, Any]]:
        """Per channel: `{"ring", "messages", "silence_s"}`, and `"legs"` (each with its `name`) when the
        worker runs redundant connections."""
        out: dict[str, dict[str, Any]] = {}
        for channel, entry in self.channels.items():
            since, counts = entry.since_ns, entry.counts
            figures = {
                "ring": entry.ring,
                "messages": counts.before + counts.messages,
                "silence_s": _seconds(now_ns - (counts.last_ns or since)),
            }
            if entry.legs:
                figures["legs"] = [
                    {
                        "name": name,
                        "messages": leg.before + leg.messages,
                        "silence_s": _seconds(now_ns - (leg.last_ns or since)),
                    }
                    for name, leg in zip(leg_names, entry.legs, strict=False)
                ]
            out[channel] = figures
        return out


def _seconds(ns: int) -> float:
    return round(max(0, ns) / 1e9, 3)


def ring_silence(channels: dict[str, dict[str, Any]]) -> dict[str, tuple[float, float]]:
    """Per ring, the silence of its freshest and of its quietest channel (a chain ring has many)."""
    out: dict[str, tuple[float, float]] = {}
    for figures in channels.values():
        ring, silence = figures["ring"], figures["silence_s"]
        low, high = out.get(ring, (silence, silence))
        out[ring] = (min(low, silence), max(high, silence))
    return out
