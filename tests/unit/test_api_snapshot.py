"""The pure v1 answer: parameters, exact body bytes, and errors."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import orjson
import pytest

from api.snapshot import (
    ApiError,
    Snapshot,
    courses_v1,
    parse_directions,
    parse_exchanger,
    readiness,
)
from schemas.records import Latest, VenueQuote
from schemas.settings import DEFAULT_DIRECTIONS

T = datetime(2026, 11, 24, 16, 0, tzinfo=UTC)


def latest(direction: str, quotes: dict[str, tuple[str, bool]], venue: str = "binance") -> Latest:
    return Latest(
        direction,
        venue,
        None,
        None,
        None,
        False,
        "",
        None,
        {v: VenueQuote(Decimal(value), T, T, fresh) for v, (value, fresh) in quotes.items()},
    )


@pytest.fixture
def snapshot() -> Snapshot:
    now = [0.0]
    snap = Snapshot(clock=lambda: now[0])
    snap.apply(latest("BTC-USD", {"binance": ("54000.000123", True)}))
    snap.apply(latest("ETH-USD", {"binance": ("3400.10", False)}))
    snap.apply(latest("*", {}))
    return snap


def test_directions_parsing() -> None:
    known = DEFAULT_DIRECTIONS
    assert parse_directions(None, known) == list(known)
    assert parse_directions(["eth-usd,BTC-USD", "btc-usd"], known) == ["ETH-USD", "BTC-USD"]
    assert parse_directions([" , "], known) == list(known)
    with pytest.raises(ApiError) as info:
        parse_directions(["BTC-EUR"], known)
    assert info.value.status == 422
    assert "BTC-EUR" in info.value.message and "BTC-USD" in info.value.message


def test_exchanger_parsing() -> None:
    assert parse_exchanger(None) is None
    assert parse_exchanger(" BINANCE ") == "binance"
    with pytest.raises(ApiError) as info:
        parse_exchanger("mtgox")
    assert info.value.status == 422 and "binance" in info.value.message


def test_v1_body_is_exact(snapshot: Snapshot) -> None:
    body = courses_v1(snapshot, None, ["BTC-USD", "ETH-USD"])
    assert (
        body == b'{"exchanger":"binance","courses":[{"direction":"BTC-USD","value":54000.000123}]}'
    )
    assert orjson.loads(body)["courses"][0]["value"] == 54000.000123


def test_v1_503_when_nothing_is_fresh(snapshot: Snapshot) -> None:
    with pytest.raises(ApiError) as info:
        courses_v1(snapshot, "binance", ["ETH-USD"])
    assert (info.value.status, info.value.retry_after_s) == (503, 1)
    with pytest.raises(ApiError, match="no rates yet"):
        courses_v1(Snapshot(), None, ["BTC-USD"])


def test_readiness(snapshot: Snapshot) -> None:
    assert not readiness(Snapshot()).ready
    assert readiness(snapshot).ready
