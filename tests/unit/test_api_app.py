"""The assembled app in-process: typed state, the fast path equal to the FastAPI route."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest
from fastapi import FastAPI

from api.app import create_app
from api.dependencies import state_of
from api.settings import ApiSettings
from api.snapshot import Snapshot
from schemas.records import Latest, VenueQuote
from schemas.settings import DEFAULT_DIRECTIONS

T = datetime(2026, 11, 24, 16, 0, tzinfo=UTC)
QUERIES = [
    "",
    "?direction=btc-usd,ETH-USD",
    "?direction=BTC-USD&direction=eth-usd&exchanger=KRAKEN",
    "?exchanger=coingeko",
    "?exchanger=nope",
    "?direction=BTC-EUR",
    "?exchanger=binance&direction=ETH-USD",
]


def snapshot() -> Snapshot:
    snap = Snapshot(DEFAULT_DIRECTIONS, clock=lambda: 100.0)
    quotes = {
        "binance": VenueQuote(Decimal("54000.000123"), T, T, True),
        "kraken": VenueQuote(Decimal("54001"), T, T, True),
    }
    value = Decimal("54000.000123")
    snap.apply(Latest("BTC-USD", "binance", value, T, T, False, "p", T, quotes), 1)
    snap.apply(Latest("*", "binance", None, None, None, False, "preferred venue", T, {}), 2)
    return snap


Got = tuple[int, list[tuple[str, str]], str]


async def answers(fast_path: bool, paths: list[str]) -> list[Got]:
    """Status, headers and body of each path, from an app on a fixed snapshot."""
    settings = ApiSettings(api_fast_path=fast_path, database_url=None)
    app = create_app(settings, follow_kafka=False, snapshot=snapshot(), now=lambda: T)
    transport = httpx.ASGITransport(app=app)
    found = []
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        for path in paths:
            response = await client.get(path)
            found.append((response.status_code, list(response.headers.items()), response.text))
    return found


async def test_the_fast_path_answers_as_the_fastapi_route() -> None:
    paths = [f"/api/v1/courses{query}" for query in QUERIES]
    fast, slow = await answers(True, paths), await answers(False, paths)
    assert fast == slow
    assert [status for status, _, _ in fast] == [200, 200, 200, 503, 422, 422, 503]
    assert fast[2][2] == '{"exchanger":"kraken","courses":[{"direction":"BTC-USD","value":54001}]}'


async def test_route_errors_are_answered_as_the_api_error_they_raise() -> None:
    (status, headers, body), (hstatus, hheaders, hbody) = await answers(
        False, ["/api/v2/courses?direction=BTC-EUR", "/api/v2/courses/history?direction=BTC-USD"]
    )
    assert status == 422 and body.startswith('{"detail":"unknown direction BTC-EUR; valid')
    assert ("cache-control", "max-age=1") in headers
    assert hstatus == 503 and ("cache-control", "no-store") in hheaders
    assert hbody == '{"detail":"history is not configured: DATABASE_URL is not set"}'


def test_the_routes_state_comes_only_from_create_app() -> None:
    with pytest.raises(TypeError, match="create_app"):
        state_of(FastAPI())
