"""CoinGecko REST ``/simple/price``, polled: BTC, ETH and USDT against USD and RUB.

One answer carries every coin: ``{"bitcoin":{"usd":67187.3358936566,"rub":...,
"last_updated_at":1711356300},...}``. Prices are JSON numbers: they are read as Decimal
from their exact text. RUB values are CoinGecko's own conversions (there is no RUB market).
The plan (``COINGECKO_PLAN``) chooses the base URL and the header of the API key.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from connectors.venues.base import (
    Auth,
    Frame,
    FrameKind,
    MarketQuote,
    PollingVenue,
    RateLimit,
    collect,
    json_object,
    load_json_exact,
    make_quote,
    price,
    seconds,
)
from schemas.errors import FrameError, UnknownSymbol

NAME = "coingecko"

#: ``<coin id>/<vs currency>`` -> market.
MARKETS = {
    "bitcoin/usd": "BTC-USD",
    "bitcoin/rub": "BTC-RUB",
    "ethereum/usd": "ETH-USD",
    "ethereum/rub": "ETH-RUB",
    "tether/usd": "USDT-USD",
    "tether/rub": "USDT-RUB",
}

#: Base URL of each plan (``COINGECKO_API_URL`` unset); keyless use is the demo host.
PLAN_URLS = {
    "demo": "https://api.coingecko.com/api/v3",
    "pro": "https://pro-api.coingecko.com/api/v3",
}

#: Keys of a coin's object that are not prices.
_NOT_PRICES = ("_market_cap", "_24h_vol", "_24h_change", "last_updated_at")


def request_url(base: str, symbols: Sequence[str]) -> str:
    """``/simple/price`` for the coins and currencies of these symbols, full precision."""
    coins = dict.fromkeys(s.split("/")[0] for s in symbols)
    currencies = dict.fromkeys(s.split("/")[1] for s in symbols)
    query = urlencode(
        {
            "ids": ",".join(coins),
            "vs_currencies": ",".join(currencies),
            "include_last_updated_at": "true",
            "precision": "full",
        }
    )
    return f"{base.rstrip('/')}/simple/price?{query}"


def classify(frame: str) -> Frame:
    msg = json_object(frame, NAME)
    if msg is None:
        return Frame(FrameKind.MALFORMED, NAME)
    if "status" in msg or "error" in msg:
        return Frame(FrameKind.ERROR, NAME)
    if all(isinstance(coin, dict) for coin in msg.values()):
        return Frame(FrameKind.DATA, NAME)
    return Frame(FrameKind.MALFORMED, NAME)


def _entries(msg: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(``coin/vs``, price, last_updated_at) for every price in the answer."""
    found = []
    for coin, prices in msg.items():
        if not isinstance(prices, dict):
            raise FrameError(f"coingecko: {coin!r} is not an object")
        updated = prices.get("last_updated_at")
        for key, value in prices.items():
            if not key.endswith(_NOT_PRICES):
                found.append((f"{coin}/{key}", value, updated))
    return found


def _quote(entry: tuple[str, Any, Any], received_at: datetime) -> MarketQuote | None:
    symbol, value, updated = entry
    market = MARKETS.get(symbol)
    if market is None:
        raise UnknownSymbol(f"coingecko: unknown coin or currency {symbol!r}")
    if value is None:
        return None  # CoinGecko sends null for a price it does not have
    amount = price(value, f"coingecko {symbol}")
    ts = received_at if updated is None else seconds(updated, f"coingecko {symbol} updated")
    return make_quote(NAME, symbol, market, amount, ts, received_at)


def parse(frame: str, received_at: datetime) -> list[MarketQuote]:
    """One quote per coin and currency in a ``/simple/price`` answer; [] for error bodies."""
    msg = load_json_exact(frame, NAME)
    if not isinstance(msg, dict):
        raise FrameError("coingecko: expected a JSON object")
    if "status" in msg or "error" in msg:
        return []
    return collect(_entries(msg), lambda entry: _quote(entry, received_at))


VENUE = PollingVenue(
    name=NAME,
    url_setting="coingecko_api_url",
    interval_setting="coingecko_poll_interval_s",
    markets=MARKETS,
    request_url=request_url,
    classify=classify,
    parse=parse,
    auth=Auth(
        key_setting="coingecko_api_key",
        plan_setting="coingecko_plan",
        headers={"demo": "x-cg-demo-api-key", "pro": "x-cg-pro-api-key"},
    ),
    # The demo plan: 30 calls a minute (docs have said 30 to 100 over time).
    max_requests=RateLimit(30, 60.0),
)
