"""GET /api/v2/directions: who serves each configured direction and how, who cannot and why."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import httpx

from api.app import create_app
from api.settings import ApiSettings
from api.snapshot import Snapshot
from schemas.records import Latest, VenueQuote, VenueStatus

T = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
DIRECTIONS = ("SOL-USD", "SOL-RUB", "XMR-USD", "USDTTRC-USD")


def snapshot() -> Snapshot:
    snap = Snapshot(DIRECTIONS, clock=lambda: 100.0)
    snap.apply_status(
        VenueStatus(
            "binance",
            "up",
            T,
            T,
            "receiving data",
            serves={"SOL-USD": "SOL-USDT", "SOL-RUB": "SOL-USDT", "USDTTRC-USD": "USDC-USDT"},
            missing={"XMR-USD": "XMRUSDT is not listed"},
        ),
        1,
    )
    snap.apply_status(
        VenueStatus(
            "coinbase",
            "up",
            T,
            T,
            "receiving data",
            serves={"SOL-USD": "SOL-USD", "SOL-RUB": "SOL-USD", "USDTTRC-USD": "USDT-USD"},
            missing={"XMR-USD": "XMR-USD is not listed"},
        ),
        2,
    )
    quotes = {"coinbase": VenueQuote(Decimal("180.1"), T, T, True)}
    snap.apply(Latest("SOL-USD", "coinbase", Decimal("180.1"), T, T, False, "p", T, quotes), 3)
    return snap


async def get(path: str, **settings: object) -> httpx.Response:
    values: dict[str, object] = {"rates_venues": ("binance", "coinbase", "kraken"), **settings}
    config = ApiSettings(database_url=None, **values)  # type: ignore[arg-type]
    app = create_app(config, follow_kafka=False, snapshot=snapshot(), now=lambda: T)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        return await client.get(path)


async def test_every_direction_with_its_venues_and_reasons() -> None:
    response = await get("/api/v2/directions")
    assert response.status_code == 200
    body = response.json()
    by_name = {d["direction"]: d for d in body["directions"]}
    assert list(by_name) == list(DIRECTIONS)
    sol = by_name["SOL-USD"]
    assert sol["served"] and sol["venue"] == "coinbase"
    assert [(v["venue"], v["market"], v["how"], v["fresh"]) for v in sol["venues"]] == [
        ("binance", "SOL-USDT", "usdt_as_usd", None),
        ("coinbase", "SOL-USD", "direct", True),
    ]
    # Kraken is enabled but has said nothing yet: it is named, with why.
    assert sol["missing"] == [{"venue": "kraken", "reason": "no status from the connector yet"}]
    rub = by_name["SOL-RUB"]["venues"]
    assert {v["how"] for v in rub} == {"derived"}
    assert "USD-RUB reference" in rub[0]["detail"]
    usdt = {v["venue"]: v["how"] for v in by_name["USDTTRC-USD"]["venues"]}
    assert usdt == {"binance": "inverted", "coinbase": "direct"}
    xmr = by_name["XMR-USD"]
    assert not xmr["served"] and xmr["venues"] == []
    assert {"venue": "binance", "reason": "XMRUSDT is not listed"} in xmr["missing"]
    # Not called unserved while a venue has not reported: it may still list it.
    assert body["unserved"] == []


async def test_unserved_once_every_venue_reported_and_conversion_named() -> None:
    response = await get("/api/v2/directions", rates_usdt_as_usd=False)
    body = response.json()
    sol = next(d for d in body["directions"] if d["direction"] == "SOL-USD")
    assert sol["venues"][0]["how"] == "via_usdt"
    response = await get("/api/v2/directions", rates_venues=("binance", "coinbase"))
    assert response.json()["unserved"] == ["XMR-USD"]


async def test_the_endpoint_is_in_the_openapi_document() -> None:
    spec = (await get("/openapi.json")).json()
    assert "/api/v2/directions" in spec["paths"]
    assert "DirectionsV2" in spec["components"]["schemas"]
