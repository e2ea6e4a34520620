"""The simulator's market moves, stays positive and realistic, and can be pinned."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from connectors.simulator.market import DEFAULT_LEVELS, Market, Recording


def test_walk_moves_stays_near_its_level_and_is_reproducible() -> None:
    a, b = Market(random.Random(1)), Market(random.Random(1))
    seen = {a.step("BTC-USDT") for _ in range(500)}
    assert len(seen) > 100
    assert all(Decimal(80000) < v < Decimal(110000) for v in seen)
    for _ in range(500):
        b.step("BTC-USDT")
    assert a.price("BTC-USDT") == b.price("BTC-USDT")


def test_every_market_moves_including_the_reference() -> None:
    market = Market(random.Random(2))
    for name in DEFAULT_LEVELS:
        values = {market.step(name) for _ in range(200)}
        assert len(values) > 1, name
        assert min(values) > 0


def test_pin_and_release() -> None:
    market = Market(random.Random(3))
    market.pin("ETH-USDT", Decimal("1234.56"))
    assert market.step("ETH-USDT") == Decimal("1234.56")
    market.release("ETH-USDT")
    assert any(market.step("ETH-USDT") != Decimal("1234.56") for _ in range(10))


def test_a_recording_plays_back_in_a_loop() -> None:
    recording = Recording.from_lines(
        [
            '{"t": 0, "market": "BTC-USDT", "value": "95000.10"}',
            "",
            '{"t": 2, "market": "BTC-USDT", "value": "95010.20"}',
            '{"t": 1, "market": "USD-RUB", "value": "81.25"}',
        ]
    )
    assert recording.markets == {"BTC-USDT", "USD-RUB"}
    assert recording.period_s == 3  # the last value holds for one step (1 s here)
    first = {"BTC-USDT": Decimal("95000.10"), "USD-RUB": Decimal("81.25")}
    assert dict(recording.due(0.5)) == first  # before its first line, USD-RUB has its first
    assert dict(recording.due(1.99))["BTC-USDT"] == Decimal("95000.10")
    assert dict(recording.due(2.5))["BTC-USDT"] == Decimal("95010.20")
    assert dict(recording.due(3.5))["BTC-USDT"] == Decimal("95000.10")  # looped
    recording.check(DEFAULT_LEVELS)
    with pytest.raises(ValueError, match="unknown markets: DOGE-USD"):
        Recording.from_lines(['{"t": 0, "market": "DOGE-USD", "value": "0.1"}']).check(
            DEFAULT_LEVELS
        )


@pytest.mark.parametrize(
    "line",
    ['{"t": 0, "market": "BTC-USDT"}', '{"t": -1, "market": "BTC-USDT", "value": "1"}', "{oops"],
)
def test_a_bad_recording_line_is_named(line: str) -> None:
    with pytest.raises(ValueError, match="recording line 2"):
        Recording.from_lines(['{"t": 0, "market": "BTC-USDT", "value": "1"}', line])


def test_set_moves_a_market_unless_pinned() -> None:
    market = Market(random.Random(4))
    market.set("USD-RUB", Decimal("90.1234"))
    assert market.price("USD-RUB") == Decimal("90.1234")
    market.pin("USD-RUB", Decimal("80"))
    market.set("USD-RUB", Decimal("90"))
    assert market.price("USD-RUB") == Decimal("80")
