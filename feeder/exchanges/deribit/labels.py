"""Order labels: every new order carries one, so its outcome can always be reconciled.

Deribit lets an order carry a `label` (at most 64 characters) and echoes it in the order object of the
result (`result["order"]["label"]`); `private/get_open_orders_by_label` and friends find orders by it.
Rules it keeps:
- A new order (`private/buy`, `private/sell`) sent without a label gets a generated one, `fh-` and 16
  hex digits, before it is sent: `FeederHandle` does it (so even its own failures can name the order),
  and so does the session for in-process callers. The caller finds the label in the result, or in
  `OutcomeUnknown.label` when the outcome is not known.
- A label that is not a string of at most 64 characters is refused before sending.
"""

from __future__ import annotations

import secrets
from typing import Any

from feeder.errors import UsageError

MAX_LABEL = 64
NEW_ORDER_METHODS = frozenset({"private/buy", "private/sell"})
PREFIX = "fh-"


def new_label() -> str:
    return PREFIX + secrets.token_hex(8)


def check_label(method: str, params: Any) -> str | None:
    """The request's label, checked (Deribit allows at most 64 characters)."""
    if params is not None and not isinstance(params, dict):
        raise UsageError(
            f"{method}: params must be a dict of Deribit's named params, got {type(params).__name__}"
        )
    label = (params or {}).get("label")
    if label is not None and (not isinstance(label, str) or len(label) > MAX_LABEL):
        raise UsageError(
            f"{method}: label must be a string of at most {MAX_LABEL} characters, got {label!r:.80}"
        )
    return label


def with_label(method: str, params: Any) -> tuple[Any, str | None]:
    """(params, label): a new order without a label gets a generated one (params copied, not changed)."""
    label = check_label(method, params)
    if label is None and method in NEW_ORDER_METHODS:
        label = new_label()
        params = {**(params or {}), "label": label}
    return params, label
