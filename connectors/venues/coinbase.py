"""Coinbase Advanced Trade market-data websocket: the ``ticker`` and ``heartbeats`` channels.

Frames: ``{"channel":"subscriptions",...}`` acks, then ``{"channel":"ticker","timestamp":...,
"events":[{"type":"snapshot"|"update","tickers":[{"product_id":...,"price":...}]}]}``. Quiet
channels are closed after 60-90 s, so the client also subscribes to ``heartbeats`` (one frame
a second). ``sequence_num`` restarts on every connection, so it cannot identify a quote.
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
    lookup,
    make_quote,
    price,
    rfc3339,
    same_url,
)
from connectors.venues.naming import dash_naming
from schemas.errors import FrameError

NAME = "coinbase"

#: Product ids are the canonical market (``SOL-USD``): USD markets, USDT-USD for USDT.
NAMING = dash_naming(usd_quotes=("USD",), usdt_markets=("USDT-USD",))

#: The markets of the default directions.
MARKETS = {
    "BTC-USD": "BTC-USD",
    "ETH-USD": "ETH-USD",
    "USDT-USD": "USDT-USD",
}

_TICKER_CHANNELS = ("ticker", "ticker_batch")


#: Products per subscribe message: Coinbase documents no number, only 8 messages a second
#: per IP, so long lists go in a few messages of this size (the loop spaces them).
MAX_PRODUCTS = 100


def subscribe(symbols: Sequence[str]) -> list[str]:
    """One channel per subscribe message: the tickers (in messages of MAX_PRODUCTS), and
    heartbeats to keep the connection open."""
    chunks = [symbols[i : i + MAX_PRODUCTS] for i in range(0, len(symbols), MAX_PRODUCTS)]
    return [
        *(
            orjson.dumps(
                {"type": "subscribe", "product_ids": list(chunk), "channel": "ticker"}
            ).decode()
            for chunk in chunks
        ),
        orjson.dumps({"type": "subscribe", "channel": "heartbeats"}).decode(),
    ]


def _first_product(msg: dict[str, Any]) -> str:
    for event in msg.get("events") or ():
        for ticker in (event.get("tickers") or ()) if isinstance(event, dict) else ():
            if isinstance(ticker, dict) and isinstance(ticker.get("product_id"), str):
                return str(ticker["product_id"])
    return NAME


def classify(frame: str) -> Frame:
    msg = json_object(frame, NAME)
    if msg is None:
        return Frame(FrameKind.MALFORMED, NAME)
    if msg.get("type") == "error":
        return Frame(FrameKind.ERROR, NAME)
    channel = msg.get("channel")
    if not isinstance(msg.get("events"), list):
        return Frame(FrameKind.MALFORMED, NAME)
    if channel in _TICKER_CHANNELS:
        return Frame(FrameKind.DATA, _first_product(msg))
    if channel == "heartbeats":
        return Frame(FrameKind.HEARTBEAT, NAME)
    if channel == "subscriptions":
        return Frame(FrameKind.CONTROL, NAME)
    return Frame(FrameKind.MALFORMED, NAME)


def _ticker(item: object, ts: datetime, received_at: datetime) -> MarketQuote:
    entry, product, market = lookup(item, "product_id", NAMING.market, NAME)
    value = price(entry.get("price"), "coinbase ticker price")
    return make_quote(NAME, product, market, value, ts, received_at)


def parse(frame: str, received_at: datetime) -> list[MarketQuote]:
    """Quotes of a ticker message; [] for acks, heartbeats and errors."""
    msg = load_json(frame, NAME)
    if not isinstance(msg, dict):
        raise FrameError("coinbase: expected a JSON object")
    if msg.get("type") == "error" or msg.get("channel") in ("subscriptions", "heartbeats"):
        return []
    if msg.get("channel") not in _TICKER_CHANNELS:
        raise FrameError(f"coinbase: unexpected channel {msg.get('channel')!r}")
    events = msg.get("events")
    if not isinstance(events, list):
        raise FrameError("coinbase: ticker message without events")
    ts = rfc3339(msg.get("timestamp"), "coinbase timestamp")
    tickers: list[object] = []
    for event in events:
        if not isinstance(event, dict) or not isinstance(event.get("tickers"), list):
            raise FrameError("coinbase: ticker event without tickers")
        tickers.extend(event["tickers"])
    return collect(tickers, lambda item: _ticker(item, ts, received_at))


def symbol_paths(symbols: Sequence[str]) -> list[str]:
    """The public spot product list in one request (one request per product would meet the
    public limit of 10 requests a second with many directions)."""
    return ["/api/v3/brokerage/market/products?product_type=SPOT"]


def _trading(product: dict[str, Any]) -> bool:
    return product.get("status") == "online" and not product.get("trading_disabled", False)


def listed(status: int, body: str) -> dict[str, bool]:
    """Product -> trading (online, not disabled), from the product list or one product
    (404: unknown)."""
    if status == 404:
        return {}
    msg = load_json(body, NAME)
    if status == 200 and isinstance(msg, dict) and isinstance(msg.get("products"), list):
        return listing(msg["products"], "product_id", _trading, NAME)
    if status != 200 or not isinstance(msg, dict) or not isinstance(msg.get("product_id"), str):
        raise FrameError(f"coinbase: unexpected product answer (HTTP {status})")
    return {msg["product_id"]: _trading(msg)}


VENUE = WebsocketVenue(
    name=NAME,
    url_setting="coinbase_ws_url",
    markets=MARKETS,
    naming=NAMING,
    connect_url=same_url,
    subscribe=subscribe,
    classify=classify,
    parse=parse,
    heartbeat=None,  # the heartbeats channel keeps the connection open
    silence_limit_s=3.0,
    max_messages_per_s=5.0,
    max_connects=RateLimit(8, 1.0),
    symbol_check=SymbolCheck("coinbase_api_url", symbol_paths, listed),
)
