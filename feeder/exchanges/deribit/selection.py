"""Which instruments the feeder serves: exact names and glob patterns, kinds and currencies.

`Selection(patterns, kinds, currencies)` is pure: `resolve(catalog)` picks the instruments of a
`public/get_instruments` catalog, `matches(info)` says whether a listing seen at run time belongs to
the selection. Rules it keeps:
- A pattern is an exact name (`BTC-PERPETUAL`) or a glob (`BTC-*-C`, `ETH-27DEC26-*`, case-sensitive,
  `*`, `?` and `[...]` as in fnmatch). An instrument is selected when it matches a pattern (any, when
  none is given), its kind is one of `kinds` (any when none) and, when `currencies` are given, the
  exchange listed it for one of them.
- Every pattern, kind and currency must select something now: one that selects nothing is an error
  naming it (a typo must never start a feeder that silently serves less).
- The selection follows listings (`instrument.state` channels) when it can grow: when it has a glob,
  a kind or a currency, or serves an instrument that expires (to see it end).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass

from feeder.errors import UsageError
from feeder.exchanges.deribit.instruments import KINDS, STATE_KIND, InstrumentInfo

_GLOB = frozenset("*?[")


class SelectionError(UsageError):
    """What the user asked for does not select what they meant (exit 2)."""


def is_glob(pattern: str) -> bool:
    return not _GLOB.isdisjoint(pattern)


@dataclass(frozen=True)
class Selection:
    patterns: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    currencies: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = [k for k in self.kinds if k not in KINDS]
        if unknown:
            raise SelectionError(
                f"unknown instrument kind {', '.join(unknown)}: kinds are {', '.join(KINDS)}"
            )

    @property
    def exact(self) -> bool:
        """Only exact names: the exchange must be asked only for their ids."""
        return not self.kinds and not self.currencies and not any(map(is_glob, self.patterns))

    @property
    def fetch_currencies(self) -> tuple[str, ...]:
        """The `currency` arguments of the get_instruments calls that list every candidate."""
        return self.currencies or ("any",)

    def matches(self, info: InstrumentInfo) -> bool:
        if self.kinds and info.kind not in self.kinds:
            return False
        if self.currencies and info.currency not in self.currencies:
            return False
        return not self.patterns or any(fnmatch.fnmatchcase(info.name, p) for p in self.patterns)

    def resolve(self, catalog: Iterable[InstrumentInfo]) -> list[InstrumentInfo]:
        """The selected instruments in catalog order, or SelectionError naming every pattern, kind or
        currency that selected nothing."""
        catalog = list(catalog)
        chosen = [info for info in catalog if self.matches(info)]
        problems = [f"currency {c!r} lists no instrument" for c in self._empty_currencies(catalog)]
        problems += [
            f"kind {k!r} matched nothing" for k in self.kinds if not any(i.kind == k for i in chosen)
        ]
        names = {info.name for info in catalog}
        for pattern in self.patterns:
            if not any(fnmatch.fnmatchcase(info.name, pattern) for info in chosen):
                problems.append(self._why_nothing(pattern, names))
        if problems:
            raise SelectionError(f"{'; '.join(problems)} ({self._scope(catalog)})")
        return chosen

    def follows(self, chosen: Iterable[InstrumentInfo]) -> bool:
        """Whether listings and ends must be followed at run time (see the module doc)."""
        return not self.exact or any(info.expires for info in chosen)

    def state_channels(self, chosen: Iterable[InstrumentInfo]) -> list[str]:
        """`instrument.state.{kind}.{currency}` channels: the selected kinds (else those of the chosen
        instruments) in the selected currencies (else any)."""
        chosen = list(chosen)
        if not self.follows(chosen):
            return []
        kinds = self.kinds or tuple(dict.fromkeys(info.kind for info in chosen))
        state_kinds = dict.fromkeys(STATE_KIND[k] for k in kinds)
        return [f"instrument.state.{k}.{c}" for k in state_kinds for c in self.fetch_currencies]

    def _empty_currencies(self, catalog: list[InstrumentInfo]) -> list[str]:
        return [c for c in self.currencies if not any(info.currency == c for info in catalog)]

    def _why_nothing(self, pattern: str, names: set[str]) -> str:
        if not is_glob(pattern):
            if pattern in names:
                return f"instrument {pattern!r} is listed but not of the selected kinds or currencies"
            return f"instrument {pattern!r} is not listed by the exchange"
        if any(fnmatch.fnmatchcase(name, pattern) for name in names):
            return f"pattern {pattern!r} matched nothing of the selected kinds or currencies"
        return f"pattern {pattern!r} matched nothing"

    def _scope(self, catalog: list[InstrumentInfo]) -> str:
        where = ", ".join(self.fetch_currencies)
        kinds = f"; kinds {', '.join(self.kinds)}" if self.kinds else ""
        return f"{len(catalog)} instruments listed for currency {where}{kinds}"
