"""``/api/v2/switches``: the query and the page, pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from api.answers import ApiError
from api.history import Cursor
from api.switches import make_switch_query, switches_page

T = datetime(2026, 11, 24, 16, 0, tzinfo=UTC)


def test_the_query_filters_and_pages_on_at_then_id() -> None:
    everything = make_switch_query([], None, None, 100, None)
    text, params = everything.sql()
    assert "WHERE" not in text and text.endswith("ORDER BY at, id LIMIT %s")
    assert params == [101]
    cursor = Cursor(T, "42").encode()
    some = make_switch_query(["BTC-USD", "*"], "2026-11-24t16:00:00z", None, 2, cursor)
    text, params = some.sql()
    assert "direction = ANY(%s) AND at >= %s AND (at, id) > (%s, %s)" in text
    assert params == [["BTC-USD", "*"], T, T, 42, 3]


def test_bad_windows_and_cursors_are_422() -> None:
    with pytest.raises(ApiError, match="since must be earlier than until"):
        make_switch_query([], "2026-11-24T16:00:00Z", "2026-11-24T16:00:00Z", 10, None)
    with pytest.raises(ApiError, match="cursor is not one this API returned"):
        make_switch_query([], None, None, 10, Cursor(T, "q1").encode())  # a history cursor


def test_the_page_and_its_next_cursor() -> None:
    rows = [
        (7, "BTC-USD", None, "binance", "most preferred fresh venue", T),
        (8, "*", None, "binance", "fresh in 8 of 8 directions", T),
        (9, "BTC-USD", "binance", "kraken", "binance silent", T + timedelta(seconds=3)),
    ]
    query = make_switch_query([], None, None, 2, None)
    page = orjson.loads(switches_page(query, rows))
    assert [s["direction"] for s in page["switches"]] == ["BTC-USD", "*"]
    assert page["switches"][0] == {
        "direction": "BTC-USD",
        "from_venue": None,
        "to_venue": "binance",
        "reason": "most preferred fresh venue",
        "at": "2026-11-24T16:00:00.000000Z",
    }
    assert Cursor.decode(page["next_cursor"]) == Cursor(T, "8")
    last = orjson.loads(switches_page(query, rows[2:]))
    assert last["next_cursor"] is None and len(last["switches"]) == 1
