"""Market quotes become quotes of the configured directions."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from connectors import registry
from connectors.venues.base import quote_id
from pipeline.normalize import Conversion, normalize, to_directions
from schemas.errors import FrameError, UnknownSymbol
from schemas.records import Quote, RawFrame
from schemas.settings import DEFAULT_DIRECTIONS

T = datetime(2026, 11, 24, 16, 0, tzinfo=UTC)


def market_quote(market: str, value: str = "2") -> Quote:
    return Quote("binance", market, Decimal(value), T, T, f"binance:{market}:t1")


def test_targets_of_the_default_directions() -> None:
    conv = Conversion(DEFAULT_DIRECTIONS)
    assert conv.targets("BTC-USDT") == ("BTC-USD",)
    assert conv.targets("BTC-USD") == ("BTC-USD",)
    assert conv.targets("ETH-USDT") == ("ETH-USD",)
    assert conv.targets("USDT-USD") == ("USDTTRC-USD", "USDTERC-USD")
    assert conv.targets("USDC-USDT") == ()
    assert conv.targets("BTC-EUR") == ()


def test_usdt_as_usd_can_be_turned_off() -> None:
    conv = Conversion(DEFAULT_DIRECTIONS, usdt_as_usd=False)
    assert conv.targets("BTC-USDT") == ()
    assert conv.targets("BTC-USD") == ("BTC-USD",)


def test_each_direction_gets_its_own_id_and_keeps_the_value() -> None:
    quotes = to_directions(market_quote("USDT-USD", "1.0001"), Conversion(DEFAULT_DIRECTIONS))
    assert [(q.direction, q.id, q.value) for q in quotes] == [
        ("USDTTRC-USD", "binance:USDT-USD:t1/USDTTRC-USD", Decimal("1.0001")),
        ("USDTERC-USD", "binance:USDT-USD:t1/USDTERC-USD", Decimal("1.0001")),
    ]


def test_normalize_a_raw_binance_frame() -> None:
    frame = (
        '{"stream":"btcusdt@trade","data":{"e":"trade","E":1795536000000,"s":"BTCUSDT",'
        '"t":7,"p":"95000.01000000","q":"0.1","T":1795536000000,"m":true,"M":true}}'
    )
    raw = RawFrame("binance", T, frame, "c1")
    (quote,) = normalize(raw, registry.VENUES, Conversion(DEFAULT_DIRECTIONS))
    assert quote.direction == "BTC-USD"
    assert quote.value == Decimal("95000.01000000")
    assert quote.id == "binance:BTCUSDT:t7/BTC-USD"
    assert quote.received_at == T


def test_normalize_rejects_unknown_venues_and_bad_frames() -> None:
    conv = Conversion(DEFAULT_DIRECTIONS)
    with pytest.raises(FrameError, match="unknown venue"):
        normalize(RawFrame("nowhere", T, "{}", "c"), registry.VENUES, conv)
    with pytest.raises(FrameError):
        normalize(RawFrame("binance", T, "{oops", "c"), registry.VENUES, conv)
    unknown = '{"e":"trade","s":"NOPEUSDT","t":1,"p":"1","T":1}'
    with pytest.raises(UnknownSymbol):
        normalize(RawFrame("binance", T, unknown, "c"), registry.VENUES, conv)


def _priced_without_time(frame: str, received_at: datetime) -> list[Quote]:
    """A venue that gives no event time: ts is the receive time, the id a hash of it."""
    value = Decimal(frame)
    qid = quote_id("tsless", "BTCUSDT", received_at, value)
    return [Quote("tsless", "BTC-USDT", value, received_at, received_at, qid)]


def test_a_replayed_frame_keeps_its_original_time_and_id_but_is_fresh() -> None:
    binance = registry.VENUES["binance"]
    venue = dataclasses.replace(binance, name="tsless", parse=_priced_without_time)
    conv = Conversion(DEFAULT_DIRECTIONS)
    live = RawFrame("tsless", T, "95000.5", "c1")
    (original,) = normalize(live, {"tsless": venue}, conv)
    now = T + timedelta(days=3)
    replayed = RawFrame("tsless", now, "95000.5", "replay", recorded_at=T)
    (again,) = normalize(replayed, {"tsless": venue}, conv)
    assert (again.id, again.ts, again.value) == (original.id, original.ts, original.value)
    assert again.received_at == now
