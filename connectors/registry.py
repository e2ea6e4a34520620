"""The venues this project can connect to, by name."""

from __future__ import annotations

from connectors.venues import binance
from connectors.venues.base import WebsocketVenue
from schemas.errors import ConfigError

VENUES: dict[str, WebsocketVenue] = {venue.name: venue for venue in (binance.VENUE,)}


def get(name: str) -> WebsocketVenue:
    """The venue called ``name``; ConfigError listing the known ones otherwise."""
    try:
        return VENUES[name]
    except KeyError:
        raise ConfigError(f"unknown venue {name!r} (known: {', '.join(VENUES)})") from None
