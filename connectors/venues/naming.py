"""How each venue spells a market, read both ways, and which of its markets give a USD price."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Naming:
    """How a venue names its markets, and which of them give an asset's USD price.

    ``market`` reads any symbol by the venue's rule (no fixed list: a configured asset
    needs no code); the connector checks the venue's listing for the ones it derives.
    """

    #: Canonical market (``SOL-USDT``) -> venue symbol (``SOLUSDT``).
    symbol: Callable[[str], str]
    #: Venue symbol -> canonical market; None when the rule cannot read it.
    market: Callable[[str], str | None]
    #: Quote currencies whose ``X-<quote>`` market gives X's USD price, preferred first.
    usd_quotes: tuple[str, ...]
    #: Markets that give USDT's own USD price, preferred first.
    usdt_markets: tuple[str, ...]

    def candidates(self, asset: str) -> tuple[str, ...]:
        """Markets that can give ``asset``'s USD price on this venue, preferred first."""
        if asset == "USDT":
            return self.usdt_markets
        return tuple(f"{asset}-{quote}" for quote in self.usd_quotes)


def dash_naming(usd_quotes: tuple[str, ...], usdt_markets: tuple[str, ...]) -> Naming:
    """Venues whose symbols are the canonical market (OKX ``SOL-USDT``, Coinbase ``SOL-USD``)."""
    return Naming(_same, _dashed, usd_quotes, usdt_markets)


def _same(market: str) -> str:
    return market


def _dashed(symbol: str) -> str | None:
    base, sep, quote = symbol.partition("-")
    return symbol if sep and base and quote and "-" not in quote else None


#: Quote currencies a concatenated symbol (``SOLUSDT``) can end with, longest match first.
CONCAT_QUOTES: tuple[str, ...] = ("FDUSD", "USDT", "USDC", "USD", "EUR", "BTC", "ETH")


def concat_market(symbol: str) -> str | None:
    """``SOLUSDT`` -> ``SOL-USDT``: split off a known quote currency (None: none fits)."""
    for quote in CONCAT_QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote) and symbol.isalnum():
            return f"{symbol[: -len(quote)]}-{quote}"
    return None


def concat_symbol(market: str) -> str:
    return market.replace("-", "")


def concat_naming(usd_quotes: tuple[str, ...], usdt_markets: tuple[str, ...]) -> Naming:
    """Venues whose symbols are base and quote run together (Binance and Bybit ``SOLUSDT``)."""
    return Naming(concat_symbol, concat_market, usd_quotes, usdt_markets)
