"""The history endpoint's 1-minute bars: the query and the page (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson

from api.history import Cursor, make_query, page

T = datetime(2026, 11, 24, 16, 0, tzinfo=UTC)


def test_the_bars_query_pages_by_minute_then_venue() -> None:
    after = Cursor(T, "binance").encode()
    query = make_query("BTC-USD", "2026-11-24T15:00:00Z", None, 2, after, "1m")
    text, params = query.sql()
    assert "FROM quotes_1m" in text and "minute >= %s" in text
    assert "(minute, venue) > (%s, %s)" in text and text.endswith("ORDER BY minute, venue LIMIT %s")
    assert params == ["BTC-USD", T - timedelta(hours=1), T, "binance", 3]
    raw, _ = make_query("BTC-USD", None, None, 2, None).sql()
    assert "FROM quotes " in raw and "quote_legs_out(derived_from)" in raw


def test_the_bars_page_prints_exact_values_and_the_next_cursor() -> None:
    query = make_query("BTC-USD", None, None, 2, None, "1m")
    rows = [
        (T, "binance", Decimal("94000.10"), Decimal("94010.5"), Decimal("93990.00"),
         Decimal("94001.00"), 12, T + timedelta(seconds=1), T + timedelta(seconds=59)),
        (T, "kraken", Decimal("94000.2"), Decimal("94000.2"), Decimal("94000.2"),
         Decimal("94000.2"), 1, T, T),
        (T + timedelta(minutes=1), "binance", Decimal(1), Decimal(1), Decimal(1), Decimal(1),
         1, T, T),
    ]  # fmt: skip
    body = page(query, rows)
    data = orjson.loads(body)
    assert data["direction"] == "BTC-USD" and data["resolution"] == "1m"
    assert [(b["minute"], b["venue"]) for b in data["bars"]] == [
        ("2026-11-24T16:00:00.000000Z", "binance"),
        ("2026-11-24T16:00:00.000000Z", "kraken"),
    ]
    first = data["bars"][0]
    assert b'"open":94000.10,"high":94010.5,"low":93990.00,"close":94001.00' in body
    assert first["count"] == 12 and first["last_ts"] == "2026-11-24T16:00:59.000000Z"
    assert Cursor.decode(data["next_cursor"]) == Cursor(T, "kraken")
    assert orjson.loads(page(query, rows[:2]))["next_cursor"] is None
