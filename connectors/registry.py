"""The venues this project can connect to, by name."""

from __future__ import annotations

from connectors.venues import binance, bybit, cbr, coinbase, coingecko, kraken, okx
from connectors.venues.base import Venue
from schemas.errors import ConfigError

VENUES: dict[str, Venue] = {
    venue.name: venue
    for venue in (
        binance.VENUE,
        kraken.VENUE,
        okx.VENUE,
        bybit.VENUE,
        coinbase.VENUE,
        coingecko.VENUE,
        cbr.VENUE,
    )
}


def get(name: str) -> Venue:
    """The venue called ``name``; ConfigError listing the known ones otherwise."""
    try:
        return VENUES[name]
    except KeyError:
        raise ConfigError(f"unknown venue {name!r} (known: {', '.join(VENUES)})") from None
