"""Configured directions: the market asset each names, and words for how a venue serves one.

Shared by the connector (which markets to subscribe), the pipeline (routes) and the API
(``GET /api/v2/directions``), so all three read a direction the same way.
"""

from __future__ import annotations

import re
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


#: Quote currencies a direction may have: USD (markets in USD, or USDT counted as USD) and RUB
#: (derived from X-USD and the USD-RUB reference).
DIRECTION_QUOTES: tuple[str, ...] = ("USD", "RUB")

_DIRECTION_RE = re.compile(r"^[A-Z0-9]{1,15}-(USD|RUB)$")


def check_directions(names: tuple[str, ...]) -> tuple[str, ...]:
    """Upper-case, de-duplicate (keeping order) and check ``ASSET-USD``/``ASSET-RUB`` directions.

    ASSET is any asset code of 1-15 letters or digits (``SOL``, ``1INCH``; ``USDTTRC`` and
    ``USDTERC`` name USDT); whether a venue lists it is checked by the connector at start.
    """
    upper = tuple(dict.fromkeys(n.upper() for n in names))
    bad = [n for n in upper if not _DIRECTION_RE.match(n)]
    if bad:
        raise ValueError(
            f"malformed direction {', '.join(map(repr, bad))}: expected ASSET-USD or "
            "ASSET-RUB (ASSET: 1-15 letters or digits), e.g. SOL-USD"
        )
    fiat = [n for n in upper if n.split("-")[0] in DIRECTION_QUOTES]
    if fiat:
        raise ValueError(
            f"unsupported direction {', '.join(map(repr, fiat))}: ASSET must be a crypto "
            "asset, not USD or RUB (USD-RUB is the reference, not a direction)"
        )
    if not upper:
        raise ValueError("no direction configured")
    return upper
