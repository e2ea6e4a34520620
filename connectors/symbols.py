"""At start, ask each venue which of the derived symbols exist and trade; report the rest.

Exchanges are asked through their REST listings before subscribing (connectors/subscriptions.py
picks what to subscribe from them); CoinGecko's coin ids come from settings, defaults or its
coin list; a polled source is also judged by its first answer, which carries every symbol it
knows. A direction that no enabled venue serves is one WARNING naming it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime

import aiohttp

from connectors import metrics, subscriptions
from connectors.http import get_text
from connectors.settings import ConnectorSettings
from connectors.subscriptions import Plan, unserved
from connectors.venues import coingecko
from connectors.venues.base import (
    PollingVenue,
    SymbolCheck,
    Venue,
    WebsocketVenue,
    load_json,
    unquoted,
)
from schemas.directions import assets
from schemas.errors import FrameError, UnknownSymbol, VenueError

log = logging.getLogger(__name__)

#: A symbol check never holds anything up for longer than this per request.
TIMEOUT_S = 10.0


async def fetch_listing(
    client: aiohttp.ClientSession,
    venue: str,
    check: SymbolCheck,
    api_url: str,
    symbols: Sequence[str],
) -> dict[str, bool] | None:
    """Symbol -> trading, from the venue's REST listing; None (and a WARNING) when it
    could not be read: the connector then subscribes unchecked and carries on."""
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
            "%s: cannot read the symbol listing at %s (%s); subscribing unchecked",
            venue,
            base,
            reason,
        )
        metrics.SYMBOLS_MISSING.labels(venue).set(-1)
        return None
    return listed


async def coin_ids(
    client: aiohttp.ClientSession,
    api_url: str,
    headers: Mapping[str, str],
    assets: Sequence[str],
    configured: Mapping[str, str],
) -> tuple[dict[str, str], dict[str, str]]:
    """(asset -> CoinGecko coin id, asset -> why none): settings, defaults, then coin list.

    The coin list (one request, ``/coins/list``) is asked only for assets neither names.
    """
    ids: dict[str, str] = {}
    unknown: list[str] = []
    for asset in assets:
        coin = configured.get(asset) or coingecko.DEFAULT_IDS.get(asset)
        if coin:
            ids[asset] = coin
        else:
            unknown.append(asset)
    missing: dict[str, str] = {}
    if not unknown:
        return ids, missing
    url = f"{api_url.rstrip('/')}/coins/list"
    try:
        _, text = await get_text(client, url, headers, TIMEOUT_S)
        coins = load_json(text, coingecko.NAME)
        for asset in unknown:
            coin, why = coingecko.resolve_id(asset, coins)
            if coin is None:
                missing[asset] = why
            else:
                ids[asset] = coin
                log.info("coingecko: %s is coin id %r (%s)", asset, coin, why)
    except (aiohttp.ClientError, TimeoutError, VenueError, FrameError) as exc:
        reason = str(exc) or type(exc).__name__
        log.warning("coingecko: cannot read the coin list at %s (%s)", url, reason)
        for asset in unknown:
            missing[asset] = f"no coin id (the coin list could not be read: {reason})"
    return ids, missing


def connector_assets(directions: Sequence[str]) -> tuple[str, ...]:
    """Assets whose USD price the connector subscribes: the directions', and USDT's (the
    pipeline converts through a venue's USDT-USD when USDT is not counted as USD)."""
    return (*assets(directions), *(() if "USDT" in assets(directions) else ("USDT",)))


async def plan_venue(
    venue: Venue, settings: ConnectorSettings, client: aiohttp.ClientSession
) -> Plan:
    """What to subscribe on a venue for the configured directions (asks its listing)."""
    wanted = connector_assets(settings.rates_directions)
    if isinstance(venue, WebsocketVenue):
        listed = None
        if venue.symbol_check is not None:
            symbols = [venue.naming.symbol(m) for a in wanted for m in venue.naming.candidates(a)]
            check = venue.symbol_check
            listed = await fetch_listing(
                client, venue.name, check, settings.api_url(check), symbols
            )
        return subscriptions.plan(venue.name, venue.naming, wanted, listed)
    if venue.parse_with is None:  # a reference source: its fixed markets
        return Plan(venue.name, symbols=dict(venue.markets))
    ids, missing = await coin_ids(
        client, settings.url(venue), settings.headers(venue), wanted, settings.coin_ids
    )
    ids.setdefault("USDT", coingecko.REFERENCE_COIN)
    markets = coingecko.markets_for(ids)
    serves = {asset: f"{asset}-USD" for asset in ids}
    return Plan(venue.name, symbols=markets, serves=serves, missing=missing)


def count_missing(plan: Plan) -> None:
    """The venue's missing symbols as planned (-1: its listing was not read), set before its
    connections start: a polled source then counts what its first answer lacks."""
    metrics.SYMBOLS_MISSING.labels(plan.venue).set(len(plan.missing) if plan.checked else -1)


def report(directions: Sequence[str], plans: Sequence[Plan]) -> list[str]:
    """Log what each venue cannot serve (INFO) and the directions none serves (one WARNING)."""
    for plan in plans:
        shown = list(plan.symbols)
        more = f" and {len(shown) - 8} more" if len(shown) > 8 else ""
        log.info(
            "%s: subscribing %s%s%s",
            plan.venue,
            ", ".join(shown[:8]) or "nothing",
            more,
            "" if plan.checked else " (unchecked)",
        )
        if plan.missing:
            log.info(
                "%s: cannot serve %s",
                plan.venue,
                "; ".join(f"{asset}: {why}" for asset, why in plan.missing.items()),
            )
    lost = unserved(directions, plans)
    if lost:
        log.warning(
            "no enabled venue lists a market for %s: %s not served (GET /api/v2/directions "
            "says why per venue)",
            ", ".join(lost),
            "it is" if len(lost) == 1 else "they are",
        )
    return lost


def check_answer(
    venue: PollingVenue,
    symbols: Mapping[str, str],
    text: str,
    received_at: datetime,
) -> list[str] | None:
    """The polled symbols (symbol -> market) the source's answer has no price for, each a
    WARNING. None when the answer says nothing either way (malformed: the poll loop says)."""
    try:
        if venue.parse_with is not None:
            quotes = venue.parse_with(text, received_at, symbols)
        else:
            quotes = venue.parse(text, received_at)
    except UnknownSymbol:
        quotes = []  # none of ours in it (CBR's document without USD)
    except FrameError:
        return None
    return _report(venue.name, unquoted(list(symbols), symbols, quotes), "are quoted")


def _report(venue: str, missing: list[tuple[str, str]], fine: str) -> list[str]:
    for symbol, why in missing:
        log.warning("%s: configured symbol %s %s on the venue: no data for it", venue, symbol, why)
    if not missing:
        log.info("%s: all configured symbols %s", venue, fine)
    metrics.SYMBOLS_MISSING.labels(venue).set(len(missing))
    return [symbol for symbol, _ in missing]
