"""Configured directions: the market asset each names, and words for how a venue serves one.

Shared by the connector (which markets to subscribe), the pipeline (routes) and the API
(``GET /api/v2/directions``), so all three read a direction the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

#: Direction asset names that are another name of a market asset (one token, two chains).
ASSET_ALIASES: Mapping[str, str] = {"USDTTRC": "USDT", "USDTERC": "USDT"}

USD, USDT, USDC, RUB = "USD", "USDT", "USDC", "RUB"
USDT_USD = "USDT-USD"
USDC_USDT = "USDC-USDT"


def split(pair: str) -> tuple[str, str]:
    """``"SOL-USD"`` -> ``("SOL", "USD")`` (a direction or a canonical market)."""
    base, _, quote = pair.partition("-")
    return base, quote


def market_asset(direction: str) -> str:
    """The asset a direction prices, as markets name it (``USDTTRC-RUB`` -> ``USDT``)."""
    base = split(direction)[0]
    return ASSET_ALIASES.get(base, base)


def assets(directions: Iterable[str]) -> tuple[str, ...]:
    """The market assets whose USD price the directions need, in order, each once.

    An ``X-RUB`` direction needs ``X``'s USD price too: it is derived from it.
    """
    return tuple(dict.fromkeys(market_asset(d) for d in directions))


#: How a venue market serves a direction (the ``how`` of ``GET /api/v2/directions``).
HOW_DIRECT = "direct"
HOW_USDT_AS_USD = "usdt_as_usd"
HOW_VIA_USDT = "via_usdt"
HOW_INVERTED = "inverted"
HOW_DERIVED = "derived"


def how(direction: str, market: str, usdt_as_usd: bool = True) -> tuple[str, str]:
    """(code, words) for how ``market`` of a venue serves ``direction``."""
    quote = split(market)[1]
    if split(direction)[1] == RUB:
        _, usd_words = how(f"{market_asset(direction)}-{USD}", market, usdt_as_usd)
        return HOW_DERIVED, f"derived: {usd_words}, times the USD-RUB reference"
    if market == USDC_USDT:
        return HOW_INVERTED, "USDC-USDT inverted (USDC stands in for USD)"
    if quote == USDT:
        if usdt_as_usd:
            return HOW_USDT_AS_USD, f"{market} market, USDT counted as USD"
        return HOW_VIA_USDT, f"{market} market times the venue's USDT-USD"
    return HOW_DIRECT, f"{market} market"
