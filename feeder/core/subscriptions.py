"""Which channels the client wants, which the server confirmed, and the requests that restore them.

Rules it keeps:
- a channel is *wanted* once the server has confirmed it (the subscribe result lists it) and until the
  caller unsubscribes; a channel the server left out of its result is *refused*, reported, not wanted;
- *active* is what the current connection confirmed; a disconnect clears it, wanted stays;
- restore asks again for every wanted channel, grouped by the subscribe method the venue uses for it
  (public vs private), in chunks, in the order they were first subscribed. The caller runs restore
  after its post-connect hook, so a venue that needs authentication for private or raw channels gets
  it first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple


class SubscribeResult(NamedTuple):
    confirmed: list[str]
    refused: dict[str, str]  # channel -> reason


def group_by_method(
    channels: Iterable[str], method_for: Callable[[str], str], chunk: int
) -> list[tuple[str, list[str]]]:
    """[(method, channels)] keeping first-seen order, each list at most `chunk` long."""
    groups: dict[str, list[str]] = {}
    for ch in dict.fromkeys(channels):
        groups.setdefault(method_for(ch), []).append(ch)
    return [(m, chs[i : i + chunk]) for m, chs in groups.items() for i in range(0, len(chs), chunk)]


def split_result(requested: Sequence[str], result: Any) -> SubscribeResult:
    """Compare a subscribe result (the list of channels the server took) with what was asked."""
    if not isinstance(result, list):
        reason = f"unexpected subscribe result {result!r:.80}"
        return SubscribeResult([], dict.fromkeys(requested, reason))
    taken = set(result)
    confirmed = [ch for ch in requested if ch in taken]
    refused = {ch: "not in the server's subscribe result" for ch in requested if ch not in taken}
    return SubscribeResult(confirmed, refused)


class Subscriptions:
    def __init__(self) -> None:
        self.wanted: dict[str, None] = {}  # insertion-ordered set
        self.active: set[str] = set()
        self.refused_total = 0

    def confirmed(self, result: SubscribeResult) -> None:
        for ch in result.confirmed:
            self.wanted[ch] = None
            self.active.add(ch)
        for ch in result.refused:
            self.wanted.pop(ch, None)
        self.refused_total += len(result.refused)

    def removed(self, channels: Iterable[str]) -> None:
        for ch in channels:
            self.wanted.pop(ch, None)
            self.active.discard(ch)

    def disconnected(self) -> None:
        self.active.clear()

    def to_restore(self, method_for: Callable[[str], str], chunk: int) -> list[tuple[str, list[str]]]:
        return group_by_method((ch for ch in self.wanted if ch not in self.active), method_for, chunk)
