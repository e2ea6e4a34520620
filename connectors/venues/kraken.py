"""Kraken spot websocket v2: the ``ticker`` channel (event trigger: trades).

Frames: a ``status`` frame on connect, one subscribe ack per symbol, then ``snapshot`` and
``update`` ticker frames; ``{"channel":"heartbeat"}`` about once a second when nothing else
is sent. Prices are JSON *numbers* with fixed decimals (``0.99980``): they are read as
Decimal from their exact text, never through a float.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from connectors.venues.base import (
    Frame,
    FrameKind,
    MarketQuote,
    RateLimit,
    SymbolCheck,
    WebsocketVenue,
    collect,
    json_object,
    listing,
    load_json,
    load_json_exact,
    lookup,
    make_quote,
    price,
    rfc3339,
    same_url,
)
from connectors.venues.naming import Naming
from schemas.errors import FrameError

NAME = "kraken"

#: The markets of the default directions.
MARKETS = {
    "BTC/USD": "BTC-USD",
    "ETH/USD": "ETH-USD",
    "USDT/USD": "USDT-USD",
}

#: Kraken's REST API (AssetPairs ``wsname``) still uses the v1 asset codes.
_V1_ASSETS = {"XBT": "BTC", "XDG": "DOGE"}


def market_of(symbol: str) -> str | None:
    """``SOL/USD`` -> ``SOL-USD`` (v1 codes such as ``XBT/USD`` read as their v2 asset)."""
    base, sep, quote = v2_symbol(symbol).partition("/")
    return f"{base}-{quote}" if sep and base and quote and "/" not in quote else None


def symbol_of(market: str) -> str:
    """``SOL-USD`` -> ``SOL/USD`` (websocket v2 names use BTC and DOGE, not XBT and XDG)."""
    return market.replace("-", "/")


#: USD markets first, else USDT ones (USDT counted as USD); USDT's own price from USDT/USD.
NAMING = Naming(symbol_of, market_of, usd_quotes=("USD", "USDT"), usdt_markets=("USDT-USD",))


def subscribe(symbols: Sequence[str]) -> list[str]:
    """One subscribe for every symbol (Kraken acks each symbol separately)."""
    message = {"method": "subscribe", "params": {"channel": "ticker", "symbol": list(symbols)}}
    return [orjson.dumps(message).decode()]


def classify(frame: str) -> Frame:
    msg = json_object(frame, NAME)
    if msg is None:
        return Frame(FrameKind.MALFORMED, NAME)
    channel = msg.get("channel")
    if channel == "heartbeat":
        return Frame(FrameKind.HEARTBEAT, NAME)
    if channel == "status":
        return Frame(FrameKind.CONTROL, NAME)
    if channel == "ticker" and isinstance(msg.get("data"), list):
        first = msg["data"][0] if msg["data"] else None
        symbol = first.get("symbol") if isinstance(first, dict) else None
        return Frame(FrameKind.DATA, symbol if isinstance(symbol, str) else NAME)
    if "method" in msg:
        if msg.get("success") is False or "error" in msg:
            return Frame(FrameKind.ERROR, NAME)
        return Frame(FrameKind.CONTROL, NAME)
    return Frame(FrameKind.MALFORMED, NAME)


def _ticker(item: object, received_at: datetime) -> MarketQuote | None:
    entry, symbol, market = lookup(item, "symbol", NAMING.market, NAME)
    if "last" not in entry:
        return None  # an update that leaves the last price unchanged
    value = price(entry["last"], "kraken ticker last")
    stamp = entry.get("timestamp")
    ts = received_at if stamp is None else rfc3339(stamp, "kraken ticker timestamp")
    return make_quote(NAME, symbol, market, value, ts, received_at)


def parse(frame: str, received_at: datetime) -> list[MarketQuote]:
    """Quotes of a ticker frame; [] for status, acks, pongs and heartbeats."""
    msg: Any = load_json_exact(frame, NAME)
    if not isinstance(msg, dict):
        raise FrameError("kraken: expected a JSON object")
    if msg.get("channel") != "ticker":
        if msg.get("channel") in ("heartbeat", "status") or "method" in msg:
            return []
        raise FrameError("kraken: not a frame of the ticker channel")
    data = msg.get("data")
    if not isinstance(data, list):
        raise FrameError("kraken: ticker frame without a data list")
    return collect(data, lambda item: _ticker(item, received_at))


def v2_symbol(wsname: str) -> str:
    """``XBT/USD`` (REST, v1 codes) -> ``BTC/USD`` (websocket v2)."""
    return "/".join(_V1_ASSETS.get(part, part) for part in wsname.split("/"))


def symbol_paths(symbols: Sequence[str]) -> list[str]:
    return ["/0/public/AssetPairs"]


def listed(status: int, body: str) -> dict[str, bool]:
    """Symbol (v2 name) -> trading, from AssetPairs (``status`` online)."""
    msg = load_json(body, NAME)
    if status != 200 or not isinstance(msg, dict) or not isinstance(msg.get("result"), dict):
        raise FrameError(f"kraken: unexpected AssetPairs answer (HTTP {status})")
    pairs = list(msg["result"].values())
    found = listing(pairs, "wsname", lambda p: p.get("status", "online") == "online", NAME)
    return {v2_symbol(wsname): trading for wsname, trading in found.items()}


VENUE = WebsocketVenue(
    name=NAME,
    url_setting="kraken_ws_url",
    markets=MARKETS,
    naming=NAMING,
    connect_url=same_url,
    subscribe=subscribe,
    classify=classify,
    parse=parse,
    heartbeat=None,  # the server sends heartbeats; no client keep-alive is needed
    silence_limit_s=3.0,
    max_messages_per_s=5.0,
    max_connects=RateLimit(150, 600.0),
    symbol_check=SymbolCheck("kraken_api_url", symbol_paths, listed),
)
