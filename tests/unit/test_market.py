"""The simulator's market moves, stays positive and realistic, and can be pinned."""

from __future__ import annotations

import random
from decimal import Decimal

from connectors.simulator.market import DEFAULT_LEVELS, Market


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
