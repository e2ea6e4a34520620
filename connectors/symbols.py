"""At start, ask each venue whether the configured symbols exist and trade; warn otherwise."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import aiohttp

from connectors import metrics
from connectors.http import get_text
from connectors.venues.base import SymbolCheck, missing_symbols
from schemas.errors import FrameError, VenueError

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
    missing = missing_symbols(symbols, listed)
    for symbol, why in missing:
        log.warning("%s: configured symbol %s %s on the venue: no data for it", venue, symbol, why)
    if not missing:
        log.info("%s: all %d configured symbols are listed and trading", venue, len(symbols))
    metrics.SYMBOLS_MISSING.labels(venue).set(len(missing))
    return [symbol for symbol, _ in missing]
