"""The per-minute rollup's pure part: bars of quotes, and bars merged in any order."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from pipeline.rollup import Bar, bar_columns, minute_of, rollup
from schemas.records import Quote

T = datetime(2026, 11, 24, 16, 0, tzinfo=UTC)


def quote(second: float, value: str, ident: str, venue: str = "binance") -> Quote:
    ts = T + timedelta(seconds=second)
    return Quote(venue, "BTC-USD", Decimal(value), ts, ts, ident)


def test_a_bar_holds_open_high_low_close_and_count_of_its_minute() -> None:
    quotes = [
        quote(10, "100.5", "b"),
        quote(5, "101", "c"),  # the first by venue time, though it arrived second
        quote(59.999999, "99.25", "d"),  # the last of the minute
        quote(30, "102.0", "e"),
        quote(60, "90", "f"),  # the next minute
        quote(20, "95", "g", venue="kraken"),
    ]
    bars = rollup(quotes)
    assert [b.key for b in bars] == [
        (T, "BTC-USD", "binance"),
        (T, "BTC-USD", "kraken"),
        (T + timedelta(minutes=1), "BTC-USD", "binance"),
    ]
    first = bars[0]
    assert (first.open, first.high, first.low, first.close, first.count) == (
        Decimal("101"),
        Decimal("102.0"),
        Decimal("99.25"),
        Decimal("99.25"),
        4,
    )
    assert (first.open_id, first.close_id) == ("c", "d")
    assert (first.open_ts, first.close_ts) == (T + timedelta(seconds=5), quotes[2].ts)
    assert (bars[2].open, bars[2].close, bars[2].count) == (Decimal(90), Decimal(90), 1)


def test_quotes_of_the_same_time_are_ordered_by_id_as_the_history_pages() -> None:
    bars = rollup([quote(1, "3", "q2"), quote(1, "1", "q1"), quote(1, "2", "q10")])
    # "q1" < "q10" < "q2", bytewise, as PostgreSQL compares the ids (COLLATE "C")
    assert (bars[0].open, bars[0].close) == (Decimal(1), Decimal(3))


def test_bars_of_any_split_merge_into_the_bar_of_all_in_any_order() -> None:
    rng = random.Random(7)
    quotes = [
        quote(rng.uniform(0, 179), f"{rng.randint(90, 110)}.{rng.randint(0, 99)}", f"id{i}")
        for i in range(300)
    ]
    whole = {b.key: b for b in rollup(quotes)}
    for _ in range(20):
        shuffled = quotes[:]
        rng.shuffle(shuffled)
        cuts = sorted(rng.sample(range(1, len(shuffled)), 5))
        parts = [shuffled[a:b] for a, b in zip([0, *cuts], [*cuts, len(shuffled)], strict=True)]
        merged: dict[tuple[datetime, str, str], Bar] = {}
        for part in parts:
            for bar in rollup(part):
                held = merged.get(bar.key)
                merged[bar.key] = bar if held is None else held.merge(bar)
        assert merged == whole


def test_bars_of_different_keys_do_not_merge() -> None:
    one, other = rollup([quote(1, "1", "a"), quote(61, "1", "b")])
    with pytest.raises(ValueError, match="different keys"):
        one.merge(other)


def test_minutes_are_utc_and_columns_follow_the_table() -> None:
    local = datetime(2026, 11, 24, 19, 0, 59, 999999).astimezone()
    assert minute_of(local) == minute_of(local.astimezone(UTC))
    assert minute_of(local).tzinfo is UTC and minute_of(local).second == 0
    columns = bar_columns(rollup([quote(1, "1.5", "a")]))
    assert columns == (
        [T],
        ["BTC-USD"],
        ["binance"],
        [Decimal("1.5")],
        [Decimal("1.5")],
        [Decimal("1.5")],
        [Decimal("1.5")],
        [1],
        [T + timedelta(seconds=1)],
        [T + timedelta(seconds=1)],
        ["a"],
        ["a"],
    )
