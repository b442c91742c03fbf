"""Connection state machine: the table allows the lifecycle and refuses everything else by name."""

from __future__ import annotations

import pytest

from feeder.core.state import ConnState, advance, allowed
from feeder.errors import InvalidTransition


def test_the_normal_lifecycle_is_allowed():
    path = [
        ConnState.IDLE,
        ConnState.CONNECTING,
        ConnState.CONNECTED,
        ConnState.RECONNECTING,
        ConnState.CONNECTING,
        ConnState.CONNECTED,
        ConnState.CLOSING,
        ConnState.CLOSED,
        ConnState.CONNECTING,
    ]
    state = path[0]
    for target in path[1:]:
        state = advance(state, target)
    assert state is ConnState.CONNECTING


def test_a_transition_not_in_the_table_names_both_states():
    with pytest.raises(InvalidTransition, match="'idle' cannot go to 'connected'"):
        advance(ConnState.IDLE, ConnState.CONNECTED)


def test_closing_can_only_end_closed():
    assert allowed(ConnState.CLOSING) == {ConnState.CLOSED}


def test_every_state_has_a_way_out():
    for state in ConnState:
        assert allowed(state), state
