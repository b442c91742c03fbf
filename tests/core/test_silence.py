"""Per-channel silence: a worker reports only the channels that changed, the supervisor keeps counts over
worker processes and measures silence from the last message (or from when a quiet channel was first seen)."""

from __future__ import annotations

from feeder.core.silence import ChannelReport, ChannelTable, ring_silence

S = 1_000_000_000
BTC, ETH = "book.BTC-PERPETUAL.raw", "book.ETH-PERPETUAL.raw"


def test_the_first_report_names_every_channel_then_only_those_that_changed():
    report = ChannelReport()
    first = report.changes([(BTC, "book.BTC", 0, 0, None), (ETH, "book.ETH", 0, 0, None)])
    assert first == {
        "full": True,
        "changed": {BTC: ("book.BTC", 0, 0, None), ETH: ("book.ETH", 0, 0, None)},
        "gone": [],
    }
    assert report.changes([(BTC, "book.BTC", 0, 0, None), (ETH, "book.ETH", 0, 0, None)]) is None
    later = report.changes([(BTC, "book.BTC", 5, 7 * S, None), (ETH, "book.ETH", 0, 0, None)])
    assert later == {"full": False, "changed": {BTC: ("book.BTC", 5, 7 * S, None)}, "gone": []}
    assert report.changes([(BTC, "book.BTC", 5, 7 * S, None)]) == {
        "full": False,
        "changed": {},
        "gone": [ETH],
    }


def test_a_leg_that_brings_copies_is_a_change_even_when_the_channel_count_stands():
    report = ChannelReport()
    report.changes([(BTC, "book.BTC", 3, 2 * S, ((3, 2 * S), (0, 0)))])
    late_copy = report.changes([(BTC, "book.BTC", 3, 2 * S, ((3, 2 * S), (3, 2 * S)))])
    assert late_copy is not None and late_copy["changed"][BTC][3] == ((3, 2 * S), (3, 2 * S))


def test_silence_runs_from_the_last_message_or_from_when_a_quiet_channel_was_first_seen():
    table = ChannelTable()
    table.merge({"full": True, "changed": {BTC: ("book.BTC", 0, 0, None), ETH: ("book.ETH", 0, 0, None)},
                 "gone": []}, 10 * S)  # fmt: skip
    table.merge({"full": False, "changed": {BTC: ("book.BTC", 40, 12 * S, None)}, "gone": []}, 13 * S)
    figures = table.figures(15 * S)
    assert figures[BTC] == {"ring": "book.BTC", "messages": 40, "silence_s": 3.0}
    assert figures[ETH] == {"ring": "book.ETH", "messages": 0, "silence_s": 5.0}
    table.merge({"full": False, "changed": {}, "gone": [ETH]}, 16 * S)
    assert list(table.figures(16 * S)) == [BTC]


def test_a_replacement_process_adds_its_counts_and_never_makes_the_last_message_older():
    table = ChannelTable()
    table.merge({"full": True, "changed": {BTC: ("book.BTC", 40, 12 * S, ((40, 12 * S), (38, 11 * S)))},
                 "gone": []}, 12 * S)  # fmt: skip
    table.new_process()
    table.merge(
        {"full": True, "changed": {BTC: ("book.BTC", 0, 0, ((0, 0), (2, 14 * S)))}, "gone": []}, 13 * S
    )
    figures = table.figures(15 * S)[BTC]
    assert figures["messages"] == 40 and figures["silence_s"] == 3.0  # 12 s: the old process's last
    assert figures["legs"] == [
        {"name": "a", "messages": 40, "silence_s": 3.0},
        {"name": "b", "messages": 40, "silence_s": 1.0},
    ]


def test_a_full_report_forgets_channels_the_new_process_does_not_serve():
    table = ChannelTable()
    table.merge({"full": True, "changed": {BTC: ("book.BTC", 1, S, None), ETH: ("book.ETH", 1, S, None)},
                 "gone": []}, S)  # fmt: skip
    table.new_process()
    table.merge({"full": True, "changed": {BTC: ("book.BTC", 0, 0, None)}, "gone": []}, 2 * S)
    assert list(table.figures(2 * S)) == [BTC]


def test_a_chain_ring_shows_its_freshest_and_its_quietest_channel():
    channels = {
        "book.BTC-1.raw": {"ring": "book.options.BTC", "silence_s": 0.2},
        "book.BTC-2.raw": {"ring": "book.options.BTC", "silence_s": 40.0},
        BTC: {"ring": "book.BTC", "silence_s": 1.5},
    }
    assert ring_silence(channels) == {"book.options.BTC": (0.2, 40.0), "book.BTC": (1.5, 1.5)}
