"""Pure normalization: a raw venue frame into quotes of the configured directions."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from connectors.venues.base import WebsocketVenue
from schemas.errors import FrameError
from schemas.records import Quote, RawFrame

#: Direction asset names that are another name of a market asset (one token, two chains).
ASSET_ALIASES: Mapping[str, str] = {"USDTTRC": "USDT", "USDTERC": "USDT"}

USD = "USD"
USDT = "USDT"


def split(pair: str) -> tuple[str, str]:
    base, _, quote = pair.partition("-")
    return base, quote


@dataclass(frozen=True)
class Conversion:
    """Which markets serve which directions."""

    directions: tuple[str, ...]
    #: BTC-USDT counts as BTC-USD (the market convention).
    usdt_as_usd: bool = True

    @functools.cached_property
    def _targets(self) -> dict[str, tuple[str, ...]]:
        targets: dict[str, list[str]] = {}
        for direction in self.directions:
            base, quote = split(direction)
            asset = ASSET_ALIASES.get(base, base)
            markets = [f"{asset}-{quote}"]
            if quote == USD and self.usdt_as_usd and asset != USDT:
                markets.append(f"{asset}-{USDT}")
            for market in markets:
                targets.setdefault(market, []).append(direction)
        return {market: tuple(found) for market, found in targets.items()}

    def targets(self, market: str) -> tuple[str, ...]:
        """The configured directions a quote of this market serves directly."""
        return self._targets.get(market, ())


def to_directions(quote: Quote, conversion: Conversion) -> list[Quote]:
    """Re-label a venue market quote as the directions it serves (none when it serves none)."""
    return [
        replace(quote, direction=direction, id=f"{quote.id}/{direction}")
        for direction in conversion.targets(quote.direction)
    ]


def normalize(
    raw: RawFrame, venues: Mapping[str, WebsocketVenue], conversion: Conversion
) -> Sequence[Quote]:
    """All direction quotes in one raw frame; FrameError when it cannot be parsed.

    A replayed frame is parsed at its original receive time (``recorded_at``), so a quote
    whose venue gives no time keeps its original ``ts`` and id; its ``received_at`` is the
    replay's, so freshness works as live.
    """
    venue = venues.get(raw.venue)
    if venue is None:
        raise FrameError(f"frame from unknown venue {raw.venue!r}")
    quotes: list[Quote] = []
    for market_quote in venue.parse(raw.frame, raw.recorded_at or raw.received_at):
        if raw.recorded_at is not None:
            market_quote = replace(market_quote, received_at=raw.received_at)
        quotes.extend(to_directions(market_quote, conversion))
    return quotes
