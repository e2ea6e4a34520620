"""Query parameters one way across v1, v2 and history; RFC 3339 as the RFC says; metrics
labels of the routes FastAPI serves outside its API routes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from api.answers import ApiError
from api.edge import route_of
from api.params import check_single, parse_history_direction, parse_rfc3339
from schemas.settings import DEFAULT_DIRECTIONS

T = datetime(2026, 11, 24, 16, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-24T16:00:00Z",
        "2026-11-24t16:00:00z",
        "2026-11-24 16:00:00Z",
        "2026-11-24T19:00:00+03:00",
        "2026-11-24T15:00:00.000000-01:00",
        " 2026-11-24T16:00:00z ",
    ],
)
def test_rfc3339_times_as_the_rfc_writes_them(text: str) -> None:
    assert parse_rfc3339("since", text) == T


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-24T16:00:00",  # no offset
        "20261124T160000Z",  # ISO 8601 basic format: not RFC 3339
        "2026-W48-2T16:00:00Z",
        "2026-11-24T16:00:00 03:00",  # a + sent unencoded in a URL
        "2026-11-24",
        "yesterday",
    ],
)
def test_other_times_are_a_clear_422(text: str) -> None:
    with pytest.raises(ApiError) as info:
        parse_rfc3339("since", text)
    assert info.value.status == 422
    assert "is not an RFC 3339 time with an offset" in info.value.message
    assert "%2B" in info.value.message
    assert parse_rfc3339("since", " ") is None and parse_rfc3339("since", None) is None


def test_a_single_valued_parameter_given_twice_is_refused() -> None:
    check_single([("direction", "BTC-USD"), ("direction", "ETH-USD"), ("exchanger", "okx")])
    for name in ("exchanger", "since", "until", "limit", "cursor", "resolution"):
        with pytest.raises(ApiError) as info:
            check_single([(name, "a"), ("direction", "x"), (name, "b")])
        assert info.value.status == 422
        assert info.value.message == (
            f"{name} is given 2 times: it takes one value (only direction is repeatable)"
        )


def test_history_takes_one_direction_however_several_are_written() -> None:
    known = DEFAULT_DIRECTIONS
    assert parse_history_direction("btc-usd", known) == "BTC-USD"
    assert parse_history_direction(["btc-usd", "BTC-USD"], known) == "BTC-USD"
    for asked in (["BTC-USD", "ETH-USD"], ["BTC-USD,ETH-USD"], "BTC-USD,ETH-USD"):
        with pytest.raises(ApiError, match="history takes one direction at a time"):
            parse_history_direction(asked, known)


def test_routes_outside_the_api_routes_have_their_own_metrics_label() -> None:
    assert route_of({"path": "/openapi.json"}) == "/openapi.json"
    assert route_of({"path": "/static-offline-docs/swagger-ui.css"}) == "/static-offline-docs"
    assert route_of({"path": "/no/such/page"}) == "unmatched"
    assert route_of({"path": "/static-offline-docsX"}) == "unmatched"
