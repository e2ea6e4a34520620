"""At start, ask each venue whether the configured symbols exist and trade; warn otherwise.

Exchanges are asked through their REST listings; a polled source (CoinGecko, CBR) is judged
by its first answer, which carries every symbol it knows.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

import aiohttp

from connectors import metrics
from connectors.http import get_text
from connectors.venues.base import PollingVenue, SymbolCheck, missing_symbols, unquoted
from schemas.errors import FrameError, UnknownSymbol, VenueError

log = logging.getLogger(__name__)

#: A symbol check never holds anything up for longer than this per request.
TIMEOUT_S = 10.0


async def check_symbols(
    client: aiohttp.ClientSession,
    venue: str,
    check: SymbolCheck,
    api_url: str,
    symbols: Sequence[str],
) -> list[str] | None:
    """The configured symbols the venue does not list or trade, each logged at WARNING.

    None (and a WARNING) when the venue could not be asked; the connector carries on.
    """
    listed: dict[str, bool] = {}
    base = api_url.rstrip("/")
    try:
        for path in check.paths(symbols):
            status, text = await get_text(
                client, f"{base}{path}", {}, TIMEOUT_S, ok=(200, 400, 404)
            )
            listed.update(check.listed(status, text))
    except (aiohttp.ClientError, TimeoutError, VenueError, FrameError) as exc:
        reason = str(exc) or type(exc).__name__
        log.warning(
            "%s: cannot check the configured symbols at %s (%s); carrying on", venue, base, reason
        )
        metrics.SYMBOLS_MISSING.labels(venue).set(-1)
        return None
    return _report(venue, missing_symbols(symbols, listed), "are listed and trading")


def check_answer(
    venue: PollingVenue, symbols: Sequence[str], text: str, received_at: datetime
) -> list[str] | None:
    """The configured symbols a polled source's answer has no price for, each a WARNING.

    None when the answer says nothing either way (malformed: the poll loop reports it).
    """
    try:
        quotes = venue.parse(text, received_at)
    except UnknownSymbol:
        quotes = []  # none of ours in it (CBR's document without USD)
    except FrameError:
        return None
    return _report(venue.name, unquoted(symbols, venue.markets, quotes), "are quoted")


def _report(venue: str, missing: list[tuple[str, str]], fine: str) -> list[str]:
    for symbol, why in missing:
        log.warning("%s: configured symbol %s %s on the venue: no data for it", venue, symbol, why)
    if not missing:
        log.info("%s: all configured symbols %s", venue, fine)
    metrics.SYMBOLS_MISSING.labels(venue).set(len(missing))
    return [symbol for symbol, _ in missing]
