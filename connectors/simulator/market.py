"""The simulated market: a mean-reverting random walk per market, with prices tests can pin."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class Level:
    """Where a market starts and reverts to, and its price step."""

    value: Decimal
    tick: Decimal


#: Realistic levels (late 2026) in canonical market codes. USD-RUB is the reference rate.
DEFAULT_LEVELS: dict[str, Level] = {
    "BTC-USDT": Level(Decimal("95000.00"), Decimal("0.01")),
    "ETH-USDT": Level(Decimal("3400.00"), Decimal("0.01")),
    "USDC-USDT": Level(Decimal("0.9998"), Decimal("0.0001")),
    "BTC-USD": Level(Decimal("95010.00"), Decimal("0.01")),
    "ETH-USD": Level(Decimal("3400.40"), Decimal("0.01")),
    "USDT-USD": Level(Decimal("1.0001"), Decimal("0.0001")),
    "USD-RUB": Level(Decimal("81.5000"), Decimal("0.0001")),
}


class Market:
    """Prices of every market; each ``step`` moves one by a small random relative amount."""

    def __init__(
        self,
        rng: random.Random,
        levels: dict[str, Level] | None = None,
        sigma: float = 0.0002,
        reversion: float = 0.01,
    ) -> None:
        self._rng = rng
        self._levels = dict(levels or DEFAULT_LEVELS)
        self._sigma = sigma
        self._reversion = reversion
        self._prices = {m: level.value for m, level in self._levels.items()}
        self._held: set[str] = set()

    @property
    def markets(self) -> list[str]:
        return list(self._levels)

    def price(self, market: str) -> Decimal:
        return self._prices[market]

    def step(self, market: str) -> Decimal:
        """Move one market (unless pinned) and return its new price, never zero."""
        if market in self._held:
            return self._prices[market]
        level = self._levels[market]
        current = float(self._prices[market])
        pull = self._reversion * math.log(float(level.value) / current)
        moved = current * math.exp(self._sigma * self._rng.gauss(0.0, 1.0) + pull)
        value = max(Decimal(repr(moved)).quantize(level.tick), level.tick)
        self._prices[market] = value
        return value

    def pin(self, market: str, value: Decimal) -> None:
        """Hold a market at ``value`` until released (tests use it to see a known price)."""
        if market not in self._levels:
            raise KeyError(market)
        self._prices[market] = value
        self._held.add(market)

    def release(self, market: str) -> None:
        self._held.discard(market)

    def state(self) -> dict[str, str]:
        return {m: str(v) for m, v in self._prices.items()}
