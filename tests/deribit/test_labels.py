"""Order labels: a new order always has one, a bad one is refused before sending."""

from __future__ import annotations

import pytest

from feeder.errors import UsageError
from feeder.exchanges.deribit.labels import MAX_LABEL, with_label


def test_a_new_order_without_a_label_gets_a_generated_one_in_a_copy_of_its_params():
    params = {"instrument_name": "BTC-PERPETUAL", "amount": 10}
    sent, label = with_label("private/sell", params)
    assert label.startswith("fh-") and len(label) == 19 and sent == {**params, "label": label}
    assert "label" not in params
    assert with_label("private/buy", None)[1] != with_label("private/buy", None)[1]


def test_a_given_label_and_other_methods_are_left_alone():
    assert with_label("private/buy", {"label": "s1-42"}) == ({"label": "s1-42"}, "s1-42")
    assert with_label("private/cancel", {"order_id": "1"}) == ({"order_id": "1"}, None)


@pytest.mark.parametrize("label", ["x" * (MAX_LABEL + 1), 42])
def test_a_label_that_deribit_would_refuse_is_refused_before_sending(label):
    with pytest.raises(UsageError, match="label"):
        with_label("private/buy", {"label": label})
