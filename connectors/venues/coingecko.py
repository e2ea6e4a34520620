"""CoinGecko REST ``/simple/price``, polled: the configured assets against USD and RUB.

One answer carries every coin: ``{"bitcoin":{"usd":67187.3358936566,"rub":...,
"last_updated_at":1711356300},...}``. Prices are JSON numbers: they are read as Decimal
from their exact text. RUB values are CoinGecko's own conversions (there is no RUB market);
tether's USD and RUB prices give the USD-RUB reference.
The plan (``COINGECKO_PLAN``) chooses the base URL and the header of the API key.

Coins are named by CoinGecko ids, not symbols: an asset's id comes from ``COINGECKO_IDS``,
else from DEFAULT_IDS, else from CoinGecko's coin list by ``resolve_id`` (the connector asks
once at start). The frames name coins by id, so the connector sends the id -> market map
along with each answer (``RawFrame.symbols``) and the pipeline parses with it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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

#: CoinGecko ids of common assets (``COINGECKO_IDS`` adds to or overrides them).
DEFAULT_IDS: dict[str, str] = {
    "BTC": "bitcoin",
    "ETH": "ethereum",
    "USDT": "tether",
    "USDC": "usd-coin",
    "SOL": "solana",
    "XRP": "ripple",
    "DOGE": "dogecoin",
    "BNB": "binancecoin",
    "ADA": "cardano",
    "TRX": "tron",
    "TON": "the-open-network",
    "DOT": "polkadot",
    "LTC": "litecoin",
    "BCH": "bitcoin-cash",
    "LINK": "chainlink",
    "AVAX": "avalanche-2",
    "XLM": "stellar",
    "ATOM": "cosmos",
    "NEAR": "near",
    "UNI": "uniswap",
    "ETC": "ethereum-classic",
    "SHIB": "shiba-inu",
}

#: The currencies asked for: USD for the directions, RUB for tether's (the reference).
CURRENCIES = ("usd", "rub")

#: The coin whose USD and RUB prices give the USD-RUB reference.
REFERENCE_COIN = "tether"


def markets_for(ids: Mapping[str, str]) -> dict[str, str]:
    """``<coin id>/<vs currency>`` -> market for assets with these ids (asset -> id)."""
    return {
        f"{coin}/{vs}": f"{asset}-{vs.upper()}" for asset, coin in ids.items() for vs in CURRENCIES
    }


#: ``<coin id>/<vs currency>`` -> market of the default directions.
MARKETS = markets_for({"BTC": "bitcoin", "ETH": "ethereum", "USDT": "tether"})

#: Markets every coin id of DEFAULT_IDS reads as (frames without a symbol map, replays).
DEFAULT_MARKETS = markets_for(DEFAULT_IDS)

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


def _quote(
    entry: tuple[str, Any, Any], received_at: datetime, markets: Mapping[str, str]
) -> MarketQuote | None:
    symbol, value, updated = entry
    market = markets.get(symbol)
    if market is None:
        raise UnknownSymbol(f"coingecko: unknown coin or currency {symbol!r}")
    if value is None:
        return None  # CoinGecko sends null for a price it does not have
    amount = price(value, f"coingecko {symbol}")
    ts = received_at if updated is None else seconds(updated, f"coingecko {symbol} updated")
    return make_quote(NAME, symbol, market, amount, ts, received_at)


def parse_with(frame: str, received_at: datetime, symbols: Mapping[str, str]) -> list[MarketQuote]:
    """One quote per coin and currency in a ``/simple/price`` answer, coins read through
    ``symbols`` (``solana/usd`` -> ``SOL-USD``) and else DEFAULT_MARKETS; [] for errors."""
    msg = load_json_exact(frame, NAME)
    if not isinstance(msg, dict):
        raise FrameError("coingecko: expected a JSON object")
    if "status" in msg or "error" in msg:
        return []
    markets = {**DEFAULT_MARKETS, **symbols} if symbols else DEFAULT_MARKETS
    return collect(_entries(msg), lambda entry: _quote(entry, received_at, markets))


def parse(frame: str, received_at: datetime) -> list[MarketQuote]:
    """parse_with() for coins of DEFAULT_IDS (frames recorded without a symbol map)."""
    return parse_with(frame, received_at, {})


def resolve_id(asset: str, coins: object) -> tuple[str | None, str]:
    """(coin id, why) for an asset from CoinGecko's ``/coins/list`` answer.

    The rule for a symbol several coins share (wrapped and bridged tokens copy symbols):
    the coin whose id is the symbol itself (``"sol"``) if there is one, else none at all,
    never a guess; ``COINGECKO_IDS`` then names the one meant.
    """
    if not isinstance(coins, list):
        raise FrameError("coingecko: the coin list is not a list")
    symbol = asset.lower()
    found = [
        c["id"]
        for c in coins
        if isinstance(c, dict) and c.get("symbol") == symbol and isinstance(c.get("id"), str)
    ]
    if len(found) == 1:
        return found[0], f"the only coin with symbol {symbol!r}"
    if symbol in found:
        return symbol, f"the coin whose id is its symbol {symbol!r}"
    if not found:
        return None, f"no CoinGecko coin has the symbol {symbol!r}"
    shown = ", ".join(sorted(found)[:5]) + (", ..." if len(found) > 5 else "")
    return None, (
        f"{len(found)} CoinGecko coins have the symbol {symbol!r} ({shown}): "
        f"set COINGECKO_IDS={asset}=<id>"
    )


VENUE = PollingVenue(
    name=NAME,
    url_setting="coingecko_api_url",
    interval_setting="coingecko_poll_interval_s",
    markets=MARKETS,
    request_url=request_url,
    classify=classify,
    parse=parse,
    parse_with=parse_with,
    auth=Auth(
        key_setting="coingecko_api_key",
        plan_setting="coingecko_plan",
        headers={"demo": "x-cg-demo-api-key", "pro": "x-cg-pro-api-key"},
    ),
    # The demo plan: 30 calls a minute (docs have said 30 to 100 over time).
    max_requests=RateLimit(30, 60.0),
)
