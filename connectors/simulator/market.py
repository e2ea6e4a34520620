"""The simulated market: a mean-reverting random walk per market (or a recording played back),
with prices tests can pin."""

from __future__ import annotations

import bisect
import hashlib
import itertools
import json
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path


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


#: USD levels (late 2026) of common assets beyond the defaults; others get ``default_level``.
KNOWN_USD: dict[str, str] = {
    "SOL": "180.00",
    "XRP": "2.2000",
    "DOGE": "0.30000",
    "BNB": "650.00",
    "ADA": "0.9000",
    "TRX": "0.25000",
    "TON": "5.500",
    "DOT": "7.000",
    "LTC": "100.00",
    "BCH": "450.00",
    "LINK": "20.000",
    "AVAX": "35.000",
    "XLM": "0.40000",
    "ATOM": "8.000",
    "NEAR": "5.000",
    "UNI": "10.000",
    "ETC": "25.000",
    "SHIB": "0.00002000",
}

#: Assets the default levels already price (and USD, RUB: the currencies themselves).
_BUILT_IN = frozenset(("BTC", "ETH", "USDT", "USDC", "USD", "RUB"))

#: What a venue's USDT market trades at relative to the USD one (USDT a hair above USD).
_USDT_FACTOR = Decimal("0.9999")


def default_level(asset: str) -> Decimal:
    """A plausible USD level for an asset with no known one: stable per name, 0.05 to 500."""
    digest = hashlib.blake2b(asset.encode(), digest_size=4).digest()
    fraction = int.from_bytes(digest, "big") / 2**32
    return Decimal(repr(round(0.05 * 10 ** (4 * fraction), 6)))


def _level(value: Decimal) -> Level:
    """A level with about six significant digits."""
    exponent = math.floor(math.log10(value)) - 5
    tick = Decimal(1).scaleb(exponent)
    return Level(value.quantize(tick), tick)


def levels_for(assets: Iterable[str], unlisted: Iterable[str] = ()) -> dict[str, Level]:
    """DEFAULT_LEVELS plus ``X-USD`` and ``X-USDT`` for every other asset (not the unlisted:
    no simulated venue lists a market of theirs)."""
    levels = dict(DEFAULT_LEVELS)
    skip = _BUILT_IN | set(unlisted)
    for asset in dict.fromkeys(assets):
        if asset in skip:
            continue
        usd = Decimal(KNOWN_USD[asset]) if asset in KNOWN_USD else default_level(asset)
        levels[f"{asset}-USD"] = _level(usd)
        levels[f"{asset}-USDT"] = _level(usd * _USDT_FACTOR)
    return levels


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

    def tick(self, market: str) -> Decimal:
        """The market's price step (its precision)."""
        return self._levels[market].tick

    def set(self, market: str, value: Decimal) -> None:
        """Move a market to ``value`` (a recording playing back); the walk goes on from there."""
        if market not in self._levels:
            raise KeyError(market)
        if market not in self._held:
            self._prices[market] = value

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


@dataclass(frozen=True)
class Recording:
    """Recorded prices, played back in a loop instead of the walk for the markets they cover.

    A file holds JSON lines ``{"t": 0.5, "market": "BTC-USDT", "value": "95000.12"}``: the
    value of a market from ``t`` seconds after the start of each loop, until its next line.
    """

    #: market -> (times, values), both sorted by time.
    series: dict[str, tuple[list[float], list[Decimal]]] = field(default_factory=dict)
    period_s: float = 0.0

    @classmethod
    def from_lines(cls, lines: Iterable[str]) -> Recording:
        """Parse JSON lines; ValueError naming the line number of a bad one."""
        points: dict[str, list[tuple[float, Decimal]]] = {}
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                t, market, value = float(item["t"]), str(item["market"]), Decimal(item["value"])
            except (ValueError, KeyError, TypeError, InvalidOperation) as exc:
                raise ValueError(f"recording line {number}: {exc!r}") from None
            if t < 0 or not value.is_finite() or value <= 0:
                raise ValueError(f"recording line {number}: needs t >= 0 and a positive value")
            points.setdefault(market, []).append((t, value))
        if not points:
            raise ValueError("the recording holds no prices")
        series = {}
        for market, found in points.items():
            found.sort(key=lambda p: p[0])
            series[market] = ([t for t, _ in found], [v for _, v in found])
        # The last value holds for one step (the smallest gap between two times), then the
        # recording starts again.
        times = sorted({t for found in points.values() for t, _ in found})
        step = min((b - a for a, b in itertools.pairwise(times)), default=1.0)
        return cls(series, times[-1] + step)

    @classmethod
    def load(cls, path: Path) -> Recording:
        with open(path, encoding="utf-8") as lines:
            return cls.from_lines(lines)

    @property
    def markets(self) -> set[str]:
        return set(self.series)

    def check(self, known: Iterable[str]) -> None:
        unknown = sorted(self.markets - set(known))
        if unknown:
            raise ValueError(f"the recording has unknown markets: {', '.join(unknown)}")

    def due(self, elapsed_s: float) -> list[tuple[str, Decimal]]:
        """Each recorded market's value at ``elapsed_s`` into the playback (looping)."""
        position = elapsed_s % self.period_s
        found = []
        for market, (times, values) in self.series.items():
            index = bisect.bisect_right(times, position) - 1
            found.append((market, values[max(index, 0)]))
        return found
