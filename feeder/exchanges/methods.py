"""Which exchange requests are safe to repeat.

Read-only requests may fail over to another worker when one dies; everything else (orders, cancels,
edits, settings) is sent at most once, and a lost answer becomes `OutcomeUnknown`. The feeder's own
methods (`feeder/status`, `feeder/book`) never reach the exchange: read-only. Unknown methods are
treated as not safe: a wrong "read-only" guess could duplicate an order, a wrong "unsafe" guess only
costs a retry.
"""

from __future__ import annotations

_READ_ONLY_PREFIXES = ("public/", "private/get_", "feeder/")
_NOT_READ_ONLY = frozenset(
    {"public/auth", "public/subscribe", "public/unsubscribe", "public/unsubscribe_all"}
)


def is_read_only(method: str) -> bool:
    return method.startswith(_READ_ONLY_PREFIXES) and method not in _NOT_READ_ONLY


def is_private(method: str) -> bool:
    """Needs an authenticated connection."""
    return method.startswith("private/")
