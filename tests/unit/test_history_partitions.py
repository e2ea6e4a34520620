"""The history's partitions, pure part: periods, names, bounds, what is missing or expired."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from pipeline.partitions import (
    QUOTES,
    ROLLUP,
    Bound,
    Period,
    expired,
    missing,
    parse_bound,
)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_periods_start_at_utc_midnight_and_follow_each_other() -> None:
    moscow = timezone(timedelta(hours=3))
    late = datetime(2026, 12, 1, 1, 30, tzinfo=moscow)  # 2026-11-30 22:30 UTC
    assert Period.DAY.floor(late) == utc(2026, 11, 30)
    assert Period.MONTH.floor(late) == utc(2026, 11, 1)
    assert Period.DAY.following(utc(2026, 12, 31)) == utc(2027, 1, 1)
    assert Period.DAY.following(utc(2028, 2, 28)) == utc(2028, 2, 29)
    months = [utc(2026, 1, 1)]
    for _ in range(13):
        months.append(Period.MONTH.following(months[-1]))
    assert [m.month for m in months] == [*range(1, 13), 1, 2]
    assert months[12] == utc(2027, 1, 1)


def test_names_and_the_periods_ahead() -> None:
    assert QUOTES.name(utc(2026, 11, 24)) == "quotes_p20261124"
    assert ROLLUP.name(utc(2026, 11, 1)) == "quotes_1m_p202611"
    assert QUOTES.default == "quotes_default"
    now = utc(2026, 12, 30, 23, 59)
    assert QUOTES.ahead(now) == [utc(2026, 12, d) for d in (30, 31)] + [
        utc(2027, 1, 1),
        utc(2027, 1, 2),
    ]
    assert ROLLUP.ahead(now, 1) == [utc(2026, 12, 1), utc(2027, 1, 1)]
    stamps = [utc(2026, 11, 24, 23, 59), utc(2026, 11, 24), utc(2026, 11, 25, 0, 1)]
    assert QUOTES.starts(stamps) == {utc(2026, 11, 24), utc(2026, 11, 25)}


def test_bounds_as_postgresql_prints_them() -> None:
    text = "FOR VALUES FROM ('2026-11-24 00:00:00+00') TO ('2026-11-25 00:00:00+00')"
    assert parse_bound(text) == Bound(utc(2026, 11, 24), utc(2026, 11, 25))
    shifted = "FOR VALUES FROM ('2026-11-24 03:00:00+03') TO ('2026-11-25 03:00:00+03')"
    assert parse_bound(shifted) == Bound(utc(2026, 11, 24), utc(2026, 11, 25))
    for other in (
        "DEFAULT",
        "FOR VALUES FROM (MINVALUE) TO ('2026-11-25 00:00:00+00')",
        "FOR VALUES FROM ('2026-11-24 00:00:00') TO ('2026-11-25 00:00:00')",
        "FOR VALUES FROM ('yesterday') TO ('today')",
    ):
        assert parse_bound(other) is None, other


def test_missing_periods_and_expired_partitions() -> None:
    bounds = {
        "quotes_p20261124": Bound(utc(2026, 11, 24), utc(2026, 11, 25)),
        "quotes_p20261122": Bound(utc(2026, 11, 22), utc(2026, 11, 23)),
        "quotes_p20261126": Bound(utc(2026, 11, 26), utc(2026, 11, 27)),
        "by_hand": Bound(utc(2026, 11, 20), utc(2026, 11, 23)),  # any range is honoured
    }
    needed = [utc(2026, 11, d) for d in (21, 22, 24, 25, 25, 26)]
    assert missing(needed, bounds.values()) == [utc(2026, 11, 25)]
    assert missing(needed, []) == [utc(2026, 11, d) for d in (21, 22, 24, 25, 26)]
    # Only partitions whose whole range is before the cutoff go, oldest first.
    assert expired(bounds, utc(2026, 11, 24, 12)) == ["by_hand", "quotes_p20261122"]
    assert expired(bounds, utc(2026, 11, 25)) == [
        "by_hand",
        "quotes_p20261122",
        "quotes_p20261124",
    ]
    assert expired(bounds, utc(2026, 11, 22, 23, 59)) == []
